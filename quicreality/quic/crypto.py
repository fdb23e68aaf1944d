"""QUIC packet protection (RFC 9001 §5) and key update (RFC 9001 §6).

Theory of operation: a :class:`CryptoContext` protects one direction at one encryption level. It derives the
AEAD key, IV and header-protection key from a TLS traffic secret once, at :meth:`CryptoContext.setup`, and
keeps the AEAD object, the IV as an int and the header-protection cipher context for the lifetime of the keys:
no cipher object is created per packet (see ``docs/performance-notes.md``).

A :class:`CryptoPair` holds the ``send`` and ``recv`` contexts of one packet number space. For 1-RTT it also
implements key update: :meth:`CryptoPair.update_key` rotates both directions; a received short-header packet
whose Key Phase bit differs from the current phase is opened with the previous-generation keys if its packet
number precedes every packet received with the current keys, otherwise with the next-generation keys (derived
once and cached); on success both directions rotate (RFC 9001 §6.2, §6.3, §6.5). Previous receive keys stay
until :meth:`CryptoPair.discard_previous_keys`. Dropping a whole level (RFC 9001 §4.9) is the connection's
call, through :meth:`CryptoPair.teardown`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ..tls.hkdf import SUITE_HASH, CipherSuite, hash_len, hkdf_expand_label, hkdf_extract
from .packet import QUIC_VERSION_1, version_format
from .packet import QUIC_VERSION_2 as QUIC_VERSION_2  # re-exported for observers (censor lab)

#: Initial salts per version (RFC 9001 §5.2; v2: RFC 9369 §3.3.1).
INITIAL_SALTS: dict[int, bytes] = {
    QUIC_VERSION_1: bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"),
    QUIC_VERSION_2: bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"),
}
#: The cipher suite protecting Initial packets (RFC 9001 §5.2).
INITIAL_CIPHER_SUITE: Final = CipherSuite.AES_128_GCM_SHA256

#: HKDF labels per version: key, iv, hp, ku (RFC 9001 §5.1, §6.1; v2: RFC 9369 §3.3.2).
_LABELS: dict[int, tuple[bytes, bytes, bytes, bytes]] = {
    QUIC_VERSION_1: (b"quic key", b"quic iv", b"quic hp", b"quic ku"),
    QUIC_VERSION_2: (b"quicv2 key", b"quicv2 iv", b"quicv2 hp", b"quicv2 ku"),
}

#: AEAD key length per cipher suite (RFC 9001 §5.3); the header-protection key has the same length (§5.4).
AEAD_KEY_LENGTH: dict[int, int] = {
    CipherSuite.AES_128_GCM_SHA256: 16,
    CipherSuite.AES_256_GCM_SHA384: 32,
    CipherSuite.CHACHA20_POLY1305_SHA256: 32,
}
#: AEAD nonce / IV length (RFC 9001 §5.3).
AEAD_NONCE_LENGTH: Final = 12
#: AEAD authentication tag length of every QUIC v1 AEAD (RFC 9001 §5.3).
AEAD_TAG_SIZE: Final = 16
#: Header protection sample length (RFC 9001 §5.4.2).
SAMPLE_SIZE: Final = 16
#: Offset of the sample from the start of the Packet Number field (RFC 9001 §5.4.2).
SAMPLE_OFFSET: Final = 4
#: First-byte bits covered by header protection: long header 0x0f, short header 0x1f (RFC 9001 §5.4.1).
_LONG_FIRST_BYTE_MASK: Final = 0x0F
_SHORT_FIRST_BYTE_MASK: Final = 0x1F
_KEY_PHASE_BIT: Final = 0x04
_HEADER_FORM_BIT: Final = 0x80
#: Sentinel "no packet received yet with the current keys" (packet numbers are < 2**62).
_NO_PACKET: Final = 1 << 62

_FIVE_ZEROS: Final = bytes(5)
_SINGLE_BYTES: Final = tuple(bytes((i,)) for i in range(256))
#: Packet number window per encoded length in bytes (RFC 9000 Appendix A.3).
_PN_WINDOWS: Final = (0, 1 << 8, 1 << 16, 1 << 24, 1 << 32)

HeaderProtectionMask = Callable[[bytes], bytes]


class CryptoError(Exception):
    """Packet protection failed (bad tag, packet too short); the packet is discarded (RFC 9001 §5.5)."""


class KeyUnavailableError(CryptoError):
    """The keys for this level/direction are not installed (yet) or were discarded (RFC 9001 §4.9)."""


def derive_initial_secrets(cid: bytes, version: int) -> tuple[bytes, bytes]:
    """Derive the Initial secrets from the client's first Destination Connection ID (RFC 9001 §5.2).

    Returns:
        ``(client_initial_secret, server_initial_secret)``.

    Raises:
        KeyUnavailableError: unknown version.
    """
    initial_secret = _initial_secret(cid, version)
    return (
        hkdf_expand_label("sha256", initial_secret, b"client in", b"", 32),
        hkdf_expand_label("sha256", initial_secret, b"server in", b"", 32),
    )


def derive_client_initial_secret(cid: bytes, version: int) -> bytes:
    """Only the client's Initial secret (RFC 9001 §5.2): what a reader of client Initials needs
    (the REALITY gate), at half the cost of :func:`derive_initial_secrets`.

    Raises:
        KeyUnavailableError: unknown version.
    """
    return hkdf_expand_label("sha256", _initial_secret(cid, version), b"client in", b"", 32)


def _initial_secret(cid: bytes, version: int) -> bytes:
    """HKDF-Extract(initial_salt, cid) (RFC 9001 §5.2); KeyUnavailableError for an unknown version."""
    try:
        salt = INITIAL_SALTS[version]
    except KeyError:
        raise KeyUnavailableError(f"no initial salt for version {version:#x}") from None
    return hkdf_extract("sha256", salt, cid)


#: ``(secret, key, iv, hp)`` of one direction's Initial keys.
InitialKeys = tuple[bytes, bytes, bytes, bytes]
#: Recently derived Initial keys by (client DCID, version). Initial keys are not secret (anyone who
#: sees the DCID derives them, RFC 9001 §5.2), so keeping a few costs no security; the REALITY gate
#: opens a flow's Initials and then the connection it accepts derives the same keys again.
_INITIAL_KEYS: dict[tuple[bytes, int], tuple[InitialKeys, InitialKeys]] = {}
_INITIAL_KEYS_KEPT: Final = 64
#: Client-side Initial keys derived alone (by :func:`client_initial_keys`, the REALITY gate), by
#: the same key; :func:`initial_key_material` takes them from here instead of deriving them again.
_CLIENT_INITIAL_KEYS: dict[tuple[bytes, int], InitialKeys] = {}


_V = TypeVar("_V")


def _keep(cache: dict[tuple[bytes, int], _V], key: tuple[bytes, int], value: _V) -> None:
    """Insert into a cache of at most ``_INITIAL_KEYS_KEPT`` entries (the oldest goes first)."""
    if len(cache) >= _INITIAL_KEYS_KEPT:
        del cache[next(iter(cache))]
    cache[key] = value


def client_initial_keys(cid: bytes, version: int) -> InitialKeys:
    """Only the client's Initial ``(secret, key, iv, hp)`` for ``cid`` (RFC 9001 §5.2, §5.1): what
    a reader of client Initials needs (the REALITY gate), at half the cost of both directions.
    Cached, so that the connection the gate then accepts does not derive them again.

    Raises:
        KeyUnavailableError: unknown version.
    """
    cache_key = (bytes(cid), version)
    both = _INITIAL_KEYS.get(cache_key)
    if both is not None:
        return both[0]
    got = _CLIENT_INITIAL_KEYS.get(cache_key)
    if got is None:
        secret = derive_client_initial_secret(cache_key[0], version)
        got = (secret, *derive_packet_protection_keys(INITIAL_CIPHER_SUITE, secret, version))
        _keep(_CLIENT_INITIAL_KEYS, cache_key, got)
    return got


def initial_key_material(cid: bytes, version: int) -> tuple[InitialKeys, InitialKeys]:
    """The client's and the server's Initial ``(secret, key, iv, hp)`` for ``cid`` (RFC 9001
    §5.2, §5.1), from a small cache of the latest ones.

    Raises:
        KeyUnavailableError: unknown version.
    """
    cache_key = (bytes(cid), version)
    got = _INITIAL_KEYS.get(cache_key)
    if got is not None:
        return got
    suite = INITIAL_CIPHER_SUITE
    client = _CLIENT_INITIAL_KEYS.pop(cache_key, None)
    if client is None:
        client_secret, server_secret = derive_initial_secrets(cache_key[0], version)
        client = (client_secret, *derive_packet_protection_keys(suite, client_secret, version))
    else:
        server_secret = hkdf_expand_label("sha256", _initial_secret(cache_key[0], version),
                                          b"server in", b"", 32)
    got = (client, (server_secret, *derive_packet_protection_keys(suite, server_secret, version)))
    _keep(_INITIAL_KEYS, cache_key, got)
    return got


def derive_packet_protection_keys(
    cipher_suite: int, secret: bytes, version: int
) -> tuple[bytes, bytes, bytes]:
    """Derive ``(key, iv, hp)`` from a traffic secret (RFC 9001 §5.1)."""
    hash_name = SUITE_HASH[cipher_suite]
    key_label, iv_label, hp_label, _ = _LABELS[version]
    key_length = AEAD_KEY_LENGTH[cipher_suite]
    return (
        hkdf_expand_label(hash_name, secret, key_label, b"", key_length),
        hkdf_expand_label(hash_name, secret, iv_label, b"", AEAD_NONCE_LENGTH),
        hkdf_expand_label(hash_name, secret, hp_label, b"", key_length),
    )


def next_generation_secret(cipher_suite: int, secret: bytes, version: int) -> bytes:
    """The secret of the next key phase: HKDF-Expand-Label(secret, "quic ku", "", Hash.length)
    (RFC 9001 §6.1)."""
    hash_name = SUITE_HASH[cipher_suite]
    return hkdf_expand_label(hash_name, secret, _LABELS[version][3], b"", hash_len(hash_name))


def _make_aead(cipher_suite: int, key: bytes) -> AESGCM | ChaCha20Poly1305:
    """Create the AEAD object of a suite (RFC 9001 §5.3)."""
    if cipher_suite == CipherSuite.CHACHA20_POLY1305_SHA256:
        return ChaCha20Poly1305(key)
    return AESGCM(key)


def _make_header_protection(cipher_suite: int, hp_key: bytes) -> HeaderProtectionMask:
    """Return ``mask(sample) -> bytes`` (at least 5 bytes) reusing one cipher context
    (RFC 9001 §5.4.3-§5.4.4)."""
    if cipher_suite == CipherSuite.CHACHA20_POLY1305_SHA256:
        # RFC 9001 §5.4.4: counter = sample[0:4] (little endian), nonce = sample[4:16]; cryptography's 16-byte
        # ChaCha20 "nonce" is exactly counter || nonce, so the sample is used as is. One context, nonce reset.
        encryptor = Cipher(algorithms.ChaCha20(hp_key, bytes(16)), mode=None).encryptor()
        reset_nonce = encryptor.reset_nonce
        update = encryptor.update

        def chacha20_mask(sample: bytes) -> bytes:
            reset_nonce(sample)
            return update(_FIVE_ZEROS)

        return chacha20_mask
    # RFC 9001 §5.4.3: AES-ECB of the sample; ECB has no state between blocks, so the encryptor is reusable.
    return Cipher(algorithms.AES(hp_key), modes.ECB()).encryptor().update


class CryptoContext:
    """Packet protection for one direction at one encryption level (RFC 9001 §5).

    Attributes:
        cipher_suite: the TLS cipher suite, or ``None`` when not set up.
        secret: the current traffic secret (needed for key update), or ``None``.
        version: the QUIC version whose labels are used.
        key_phase: the Key Phase bit value of these keys (1-RTT only, RFC 9001 §6).
    """

    __slots__ = ("_aead", "_hp_mask", "_iv", "cipher_suite", "key_phase", "secret", "version")

    def __init__(self, key_phase: int = 0) -> None:
        self.cipher_suite: int | None = None
        self.secret: bytes | None = None
        self.version: int = QUIC_VERSION_1
        self.key_phase = key_phase
        self._aead: AESGCM | ChaCha20Poly1305 | None = None
        self._iv = 0
        self._hp_mask: HeaderProtectionMask | None = None

    def setup(self, cipher_suite: int, secret: bytes, version: int) -> None:
        """Install keys derived from a traffic secret (RFC 9001 §5.1); the key phase is left unchanged."""
        key, iv, hp = derive_packet_protection_keys(cipher_suite, secret, version)
        self._install(cipher_suite, secret, version, key, iv, hp)

    def _install(self, cipher_suite: int, secret: bytes, version: int, key: bytes, iv: bytes,
                 hp: bytes) -> None:
        self.cipher_suite = cipher_suite
        self.secret = secret
        self.version = version
        self._aead = _make_aead(cipher_suite, key)
        self._iv = int.from_bytes(iv, "big")
        self._hp_mask = _make_header_protection(cipher_suite, hp)

    def setup_client_initial(self, cid: bytes, version: int) -> None:
        """Install the client's Initial keys for ``cid`` (RFC 9001 §5.2), as a reader of client
        Initials (:func:`client_initial_keys`)."""
        secret, key, iv, hp = client_initial_keys(cid, version)
        self._install(INITIAL_CIPHER_SUITE, secret, version, key, iv, hp)

    def teardown(self) -> None:
        """Forget the keys (RFC 9001 §4.9); later use raises :class:`KeyUnavailableError`."""
        self.cipher_suite = None
        self.secret = None
        self._aead = None
        self._iv = 0
        self._hp_mask = None

    def is_valid(self) -> bool:
        """True when keys are installed."""
        return self._aead is not None

    def next_generation(self) -> CryptoContext:
        """A context for the next key phase: new AEAD key and IV, same header-protection key
        (RFC 9001 §6.1)."""
        if self.cipher_suite is None or self.secret is None:
            raise KeyUnavailableError("no keys to update")
        secret = next_generation_secret(self.cipher_suite, self.secret, self.version)
        key, iv, _ = derive_packet_protection_keys(self.cipher_suite, secret, self.version)
        ctx = CryptoContext(self.key_phase ^ 1)
        ctx.cipher_suite = self.cipher_suite
        ctx.secret = secret
        ctx.version = self.version
        ctx._aead = _make_aead(self.cipher_suite, key)
        ctx._iv = int.from_bytes(iv, "big")
        ctx._hp_mask = self._hp_mask
        return ctx

    def encrypt_packet(
        self, plain_header: bytes, plain_payload: bytes, packet_number: int
    ) -> bytes:
        """Protect a packet: AEAD then header protection (RFC 9001 §5.3, §5.4).

        Args:
            plain_header: the unprotected header, ending with the truncated packet number whose length is in
                the low two bits of the first byte. For short headers the Key Phase bit is forced to this
                context's ``key_phase``.
            plain_payload: the frames; with the packet number they must total at least 4 bytes so the
                header-protection sample exists (RFC 9001 §5.4.2).
            packet_number: the full packet number (nonce input, RFC 9001 §5.3).

        Raises:
            KeyUnavailableError: no keys.
            ValueError: payload too short to sample.
        """
        aead = self._aead
        hp_mask = self._hp_mask
        if aead is None or hp_mask is None:
            raise KeyUnavailableError("encryption keys are not available")
        first = plain_header[0]
        if first & _HEADER_FORM_BIT:
            first_mask = _LONG_FIRST_BYTE_MASK
        else:
            first_mask = _SHORT_FIRST_BYTE_MASK
            if (first & _KEY_PHASE_BIT) >> 2 != self.key_phase:
                first ^= _KEY_PHASE_BIT
                plain_header = bytes((first,)) + plain_header[1:]
        ciphertext = aead.encrypt(
            (self._iv ^ packet_number).to_bytes(12, "big"), plain_payload, plain_header
        )
        pn_length = (first & 0x03) + 1
        sample_start = SAMPLE_OFFSET - pn_length
        if len(ciphertext) < sample_start + SAMPLE_SIZE:
            raise ValueError("payload too short for the header protection sample")
        mask = hp_mask(ciphertext[sample_start : sample_start + SAMPLE_SIZE])
        # The packet number is the last pn_length bytes of the header (RFC 9001 §5.4.1);
        # written out long-hand.
        pn_offset = len(plain_header) - pn_length
        protected_pn = plain_header[pn_offset] ^ mask[1]
        if pn_length > 1:
            protected_pn = (protected_pn << 8) | (plain_header[pn_offset + 1] ^ mask[2])
            if pn_length > 2:
                protected_pn = (protected_pn << 8) | (plain_header[pn_offset + 2] ^ mask[3])
                if pn_length > 3:
                    protected_pn = (protected_pn << 8) | (plain_header[pn_offset + 3] ^ mask[4])
        return b"".join(
            (
                _SINGLE_BYTES[first ^ (mask[0] & first_mask)],
                plain_header[1:pn_offset],
                protected_pn.to_bytes(pn_length, "big"),
                ciphertext,
            )
        )

    def decrypt_packet(
        self, packet: bytes, pn_offset: int, expected_packet_number: int
    ) -> tuple[bytes, bytes, int]:
        """Remove header protection, decode the packet number and open the AEAD (RFC 9001 §5.3-§5.5).

        No key-phase handling: use :meth:`CryptoPair.decrypt_packet` for 1-RTT.

        Args:
            packet: exactly one packet (for coalesced packets, slice up to ``QuicHeader.packet_end``).
            pn_offset: offset of the Packet Number field in ``packet``.
            expected_packet_number: largest packet number received in this space plus one.

        Returns:
            ``(plain_header, payload, packet_number)``.

        Raises:
            KeyUnavailableError: no keys. CryptoError: packet too short or authentication failed.
        """
        hp_mask = self._hp_mask
        aead = self._aead
        if hp_mask is None or aead is None:
            raise KeyUnavailableError("decryption keys are not available")
        header, packet_number = _unprotect_header(
            hp_mask, packet, pn_offset, expected_packet_number
        )
        try:
            payload = aead.decrypt(
                (self._iv ^ packet_number).to_bytes(12, "big"), packet[len(header) :], header
            )
        except InvalidTag:
            raise CryptoError("payload decryption failed") from None
        return header, payload, packet_number

    def open(self, packet: bytes, plain_header: bytes, packet_number: int) -> bytes:
        """AEAD-open the payload of ``packet`` that follows ``plain_header`` (RFC 9001 §5.3)."""
        aead = self._aead
        if aead is None:
            raise KeyUnavailableError("decryption keys are not available")
        try:
            return aead.decrypt(
                (self._iv ^ packet_number).to_bytes(12, "big"),
                packet[len(plain_header) :],
                plain_header,
            )
        except InvalidTag:
            raise CryptoError("payload decryption failed") from None


def _unprotect_header(
    hp_mask: HeaderProtectionMask, packet: bytes, pn_offset: int, expected: int
) -> tuple[bytes, int]:
    """Remove header protection and decode the packet number (RFC 9001 §5.4.1, RFC 9000 Appendix A.3).

    Returns ``(plain_header, packet_number)``. Written out long-hand: it runs for every received packet.
    """
    sample_start = pn_offset + SAMPLE_OFFSET
    sample = packet[sample_start : sample_start + SAMPLE_SIZE]
    if len(sample) != SAMPLE_SIZE:
        raise CryptoError("packet too short for the header protection sample")
    mask = hp_mask(sample)
    first = packet[0]
    if first & _HEADER_FORM_BIT:
        first ^= mask[0] & _LONG_FIRST_BYTE_MASK
    else:
        first ^= mask[0] & _SHORT_FIRST_BYTE_MASK
    pn_length = (first & 0x03) + 1
    truncated = packet[pn_offset] ^ mask[1]
    if pn_length > 1:
        truncated = (truncated << 8) | (packet[pn_offset + 1] ^ mask[2])
        if pn_length > 2:
            truncated = (truncated << 8) | (packet[pn_offset + 2] ^ mask[3])
            if pn_length > 3:
                truncated = (truncated << 8) | (packet[pn_offset + 3] ^ mask[4])
    header = _SINGLE_BYTES[first] + packet[1:pn_offset] + truncated.to_bytes(pn_length, "big")
    # RFC 9000 Appendix A.3, inlined.
    window = _PN_WINDOWS[pn_length]
    half_window = window >> 1
    candidate = (expected & ~(window - 1)) | truncated
    if candidate <= expected - half_window and candidate < (1 << 62) - window:
        candidate += window
    elif candidate > expected + half_window and candidate >= window:
        candidate -= window
    return header, candidate


class CryptoPair:
    """Send and receive packet protection for one packet number space, with 1-RTT key update (RFC 9001 §6).

    Attributes:
        send: the sending context.
        recv: the receiving context of the current key phase.
        generation: number of key updates so far (initiated or peer-initiated); compare before/after
            :meth:`decrypt_packet` to notice a peer-initiated update (e.g. to arm the 3xPTO timer after which
            :meth:`discard_previous_keys` is called, RFC 9001 §6.5).
        invalid_packets: packets that failed authentication (for the integrity limit, RFC 9001 §6.6).
    """

    __slots__ = (
        "_next_recv",
        "_previous_recv",
        "_recv_min_pn",
        "generation",
        "invalid_packets",
        "recv",
        "send",
    )

    def __init__(self) -> None:
        self.send = CryptoContext()
        self.recv = CryptoContext()
        self.generation = 0
        self.invalid_packets = 0
        self._previous_recv: CryptoContext | None = None
        self._next_recv: CryptoContext | None = None
        self._recv_min_pn = _NO_PACKET

    def setup_initial(self, cid: bytes, is_client: bool, version: int) -> None:
        """Install Initial keys derived from the client's first Destination Connection ID (RFC 9001 §5.2).

        A reserved version (a client provoking Version Negotiation) uses v1's keys."""
        version = version_format(version)
        client, server = initial_key_material(cid, version)
        send, recv = (client, server) if is_client else (server, client)
        self.send._install(INITIAL_CIPHER_SUITE, send[0], version, send[1], send[2], send[3])
        self.recv._install(INITIAL_CIPHER_SUITE, recv[0], version, recv[1], recv[2], recv[3])

    def teardown(self) -> None:
        """Discard all keys of this space (RFC 9001 §4.9)."""
        self.send.teardown()
        self.recv.teardown()
        self._previous_recv = None
        self._next_recv = None

    def is_valid(self) -> bool:
        """True when both directions have keys."""
        return self.send.is_valid() and self.recv.is_valid()

    @property
    def key_phase(self) -> int:
        """The Key Phase bit used for sending (RFC 9001 §6)."""
        return self.send.key_phase

    @property
    def has_previous_keys(self) -> bool:
        """True while previous-generation receive keys are retained (RFC 9001 §6.5)."""
        return self._previous_recv is not None

    def encrypt_packet(
        self, plain_header: bytes, plain_payload: bytes, packet_number: int
    ) -> bytes:
        """Protect a packet with the send keys; see :meth:`CryptoContext.encrypt_packet`."""
        return self.send.encrypt_packet(plain_header, plain_payload, packet_number)

    def decrypt_packet(
        self, packet: bytes, pn_offset: int, expected_packet_number: int
    ) -> tuple[bytes, bytes, int]:
        """Unprotect a packet, selecting keys by the Key Phase bit for short headers (RFC 9001 §5, §6.3).

        A peer-initiated key update is accepted (both directions rotate) only after the packet authenticates
        with the next-generation keys; a failure changes no state.

        Returns:
            ``(plain_header, payload, packet_number)``.

        Raises:
            KeyUnavailableError: no keys for this space.
            CryptoError: too short or failed authentication; the packet is dropped.
        """
        recv = self.recv
        hp_mask = recv._hp_mask
        if hp_mask is None:
            raise KeyUnavailableError("decryption keys are not available")
        header, packet_number = _unprotect_header(
            hp_mask, packet, pn_offset, expected_packet_number
        )
        first = header[0]
        try:
            if first & _HEADER_FORM_BIT or (first & _KEY_PHASE_BIT) >> 2 == recv.key_phase:
                aead = recv._aead
                if aead is None:
                    raise KeyUnavailableError("decryption keys are not available")
                try:
                    payload = aead.decrypt(
                        (recv._iv ^ packet_number).to_bytes(12, "big"),
                        packet[len(header) :],
                        header,
                    )
                except InvalidTag:
                    raise CryptoError("payload decryption failed") from None
                if packet_number < self._recv_min_pn:
                    self._recv_min_pn = packet_number
                return header, payload, packet_number
            previous = self._previous_recv
            if previous is not None and packet_number < self._recv_min_pn:
                # RFC 9001 §6.5: a reordered packet from before the current key phase.
                return header, previous.open(packet, header, packet_number), packet_number
            # RFC 9001 §6.3: the peer updated its keys; trial-decrypt with the next generation.
            next_recv = self._next_recv
            if next_recv is None:
                next_recv = self._next_recv = recv.next_generation()
            payload = next_recv.open(packet, header, packet_number)
        except CryptoError:
            self.invalid_packets += 1
            raise
        self._rotate()
        self._recv_min_pn = packet_number
        return header, payload, packet_number

    def update_key(self) -> None:
        """Initiate a key update: send and receive move to the next key phase (RFC 9001 §6.1).

        The connection must only call this once a packet sent with the current keys has been acknowledged
        (RFC 9001 §6.2). The current receive keys are kept as previous keys for packets the peer sends
        before it notices the update.
        """
        if not self.is_valid():
            raise KeyUnavailableError("no keys to update")
        self._rotate()
        self._recv_min_pn = _NO_PACKET

    def discard_previous_keys(self) -> None:
        """Drop the previous-generation receive keys (RFC 9001 §6.5: about 3xPTO after an update)."""
        self._previous_recv = None

    def _rotate(self) -> None:
        """Move both directions to the next generation."""
        next_recv = self._next_recv
        if next_recv is None:
            next_recv = self.recv.next_generation()
        self._previous_recv = self.recv
        self.recv = next_recv
        self._next_recv = None
        self.send = self.send.next_generation()
        self.generation += 1
