"""TLS 1.3 key schedule and transcript (RFC 8446 §7.1, §4.4.1), SHA-256 and SHA-384.

The schedule is (``psk`` is zeros without a pre-shared key)::

    early     = HKDF-Extract(0, psk)
    handshake = HKDF-Extract(Derive-Secret(early, "derived", ""), (EC)DHE)
    master    = HKDF-Extract(Derive-Secret(handshake, "derived", ""), 0)

``Derive-Secret(S, L, M) = HKDF-Expand-Label(S, L, Transcript-Hash(M), Hash.length)``; with no messages
the context is ``Hash("")``, not the empty string (a bug the Rust prototype hit, see the roadmap).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from .hkdf import SUITE_HASH, hash_len, hkdf_expand_label, hkdf_extract
from .messages import HandshakeType

#: NSS key log labels (https://firefox-source-docs.mozilla.org/security/nss/legacy/key_log_format/).
CLIENT_HANDSHAKE_TRAFFIC_SECRET = "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
SERVER_HANDSHAKE_TRAFFIC_SECRET = "SERVER_HANDSHAKE_TRAFFIC_SECRET"
CLIENT_TRAFFIC_SECRET_0 = "CLIENT_TRAFFIC_SECRET_0"
SERVER_TRAFFIC_SECRET_0 = "SERVER_TRAFFIC_SECRET_0"
EXPORTER_SECRET = "EXPORTER_SECRET"
CLIENT_EARLY_TRAFFIC_SECRET = "CLIENT_EARLY_TRAFFIC_SECRET"

#: Derive-Secret labels (RFC 8446 §7.1).
LABEL_DERIVED = b"derived"
LABEL_C_HS_TRAFFIC = b"c hs traffic"
LABEL_S_HS_TRAFFIC = b"s hs traffic"
LABEL_C_AP_TRAFFIC = b"c ap traffic"
LABEL_S_AP_TRAFFIC = b"s ap traffic"
LABEL_EXP_MASTER = b"exp master"
LABEL_RES_MASTER = b"res master"
LABEL_RES_BINDER = b"res binder"
LABEL_C_E_TRAFFIC = b"c e traffic"
#: The per-ticket PSK label (RFC 8446 §4.6.1).
LABEL_RESUMPTION = b"resumption"
#: finished_key label (RFC 8446 §4.4.4).
LABEL_FINISHED = b"finished"


def hash_name_for_suite(cipher_suite: int) -> str:
    """hashlib name of the suite's hash (RFC 8446 §B.4)."""
    return SUITE_HASH[cipher_suite]


def empty_hash(hash_name: str) -> bytes:
    """``Hash("")``, the context of Derive-Secret over no messages."""
    return hashlib.new(hash_name).digest()


def derive_secret(hash_name: str, secret: bytes, label: bytes, transcript_hash: bytes) -> bytes:
    """Derive-Secret with the transcript hash already computed (RFC 8446 §7.1)."""
    return hkdf_expand_label(hash_name, secret, label, transcript_hash, hash_len(hash_name))


def finished_key(hash_name: str, base_key: bytes) -> bytes:
    """``finished_key = HKDF-Expand-Label(BaseKey, "finished", "", Hash.length)`` (RFC 8446 §4.4.4)."""
    return hkdf_expand_label(hash_name, base_key, LABEL_FINISHED, b"", hash_len(hash_name))


def finished_verify_data(hash_name: str, base_key: bytes, transcript_hash: bytes) -> bytes:
    """``verify_data = HMAC(finished_key, Transcript-Hash(...))`` (RFC 8446 §4.4.4)."""
    return hmac.new(finished_key(hash_name, base_key), transcript_hash, hash_name).digest()


def message_hash(hash_name: str, client_hello1: bytes) -> bytes:
    """The synthetic ``message_hash`` message that replaces ClientHello1 after a HelloRetryRequest.

    ``message_hash (254) || 00 00 Hash.length || Hash(ClientHello1)`` (RFC 8446 §4.4.1).
    """
    digest = hashlib.new(hash_name, client_hello1).digest()
    return bytes([HandshakeType.MESSAGE_HASH, 0, 0, len(digest)]) + digest


class Transcript:
    """The handshake transcript (RFC 8446 §4.4.1).

    Bytes are kept until the hash is known (the cipher suite arrives with the ServerHello or
    HelloRetryRequest); :meth:`restart_after_hello_retry` applies the message_hash substitution.
    """

    __slots__ = ("_data", "_hasher", "_hash_name", "_hashed")

    def __init__(self) -> None:
        self._data = bytearray()
        #: a running hash over ``_data[:_hashed]``, made by the first :meth:`digest` (a handshake
        #: takes six digests of a growing transcript: each new one hashes only the new bytes)
        self._hasher: Any = None
        self._hash_name = ""
        self._hashed = 0

    def __getstate__(self) -> tuple[bytearray, str]:
        """Pickle (fuzz-pair snapshots) without the running hash, which does not pickle: the
        copy re-hashes its bytes at its first :meth:`digest`."""
        return self._data, self._hash_name

    def __setstate__(self, state: tuple[bytearray, str]) -> None:
        self._data, self._hash_name = state
        self._hasher = None
        self._hashed = 0

    def add(self, message: bytes) -> None:
        """Append one complete handshake message (header included)."""
        self._data += message

    def restart_after_hello_retry(self, hash_name: str) -> None:
        """Replace the ClientHello1 collected so far by its message_hash (RFC 8446 §4.4.1)."""
        self._data = bytearray(message_hash(hash_name, bytes(self._data)))
        self._hasher = None
        self._hashed = 0

    def digest(self, hash_name: str) -> bytes:
        """Transcript-Hash of everything added so far."""
        hasher = self._hasher
        if hasher is None or self._hash_name != hash_name:
            hasher = self._hasher = hashlib.new(hash_name)
            self._hash_name = hash_name
            self._hashed = 0
        data = self._data
        if len(data) > self._hashed:
            hasher.update(data[self._hashed:])
            self._hashed = len(data)
        return hasher.copy().digest()  # type: ignore[no-any-return]

    @property
    def data(self) -> bytes:
        """The concatenated messages (for tests and debugging)."""
        return bytes(self._data)


class KeySchedule:
    """One connection's secrets for a given cipher suite (RFC 8446 §7.1).

    Call :meth:`handshake` with the (EC)DHE shared secret and the CH..SH transcript hash,
    then :meth:`application` with the CH..server Finished transcript hash. With a resumption
    ``psk`` the early secret also gives the binder key and the 0-RTT secret (:meth:`binder_key`,
    :meth:`client_early_traffic_secret`).
    """

    def __init__(self, cipher_suite: int, psk: bytes | None = None) -> None:
        self.cipher_suite = cipher_suite
        self.hash_name = hash_name_for_suite(cipher_suite)
        self.hash_len = hash_len(self.hash_name)
        zeros = bytes(self.hash_len)
        #: Early Secret = HKDF-Extract(0, PSK), with zeros for the PSK when there is none.
        self.early_secret = hkdf_extract(self.hash_name, zeros, psk if psk is not None else zeros)
        self.resumption_master_secret = b""
        self.handshake_secret = b""
        self.master_secret = b""
        self.client_handshake_traffic_secret = b""
        self.server_handshake_traffic_secret = b""
        self.client_application_traffic_secret = b""
        self.server_application_traffic_secret = b""
        self.exporter_master_secret = b""

    def _derived(self, secret: bytes) -> bytes:
        return derive_secret(self.hash_name, secret, LABEL_DERIVED, empty_hash(self.hash_name))

    def handshake(self, shared_secret: bytes, hello_hash: bytes) -> None:
        """Extract the Handshake Secret and derive both handshake traffic secrets."""
        self.handshake_secret = hkdf_extract(
            self.hash_name, self._derived(self.early_secret), shared_secret
        )
        self.client_handshake_traffic_secret = derive_secret(
            self.hash_name, self.handshake_secret, LABEL_C_HS_TRAFFIC, hello_hash
        )
        self.server_handshake_traffic_secret = derive_secret(
            self.hash_name, self.handshake_secret, LABEL_S_HS_TRAFFIC, hello_hash
        )

    def application(self, server_finished_hash: bytes) -> None:
        """Extract the Master Secret and derive the application and exporter secrets."""
        self.master_secret = hkdf_extract(
            self.hash_name, self._derived(self.handshake_secret), bytes(self.hash_len)
        )
        for attr, label in (
            ("client_application_traffic_secret", LABEL_C_AP_TRAFFIC),
            ("server_application_traffic_secret", LABEL_S_AP_TRAFFIC),
            ("exporter_master_secret", LABEL_EXP_MASTER),
        ):
            setattr(
                self,
                attr,
                derive_secret(self.hash_name, self.master_secret, label, server_finished_hash),
            )

    def verify_data(self, base_key: bytes, transcript_hash: bytes) -> bytes:
        """Finished verify_data for ``base_key`` (a handshake traffic secret)."""
        return finished_verify_data(self.hash_name, base_key, transcript_hash)

    def binder_key(self) -> bytes:
        """``Derive-Secret(early, "res binder", "")``: the resumption binder key (RFC 8446 §7.1)."""
        return derive_secret(self.hash_name, self.early_secret, LABEL_RES_BINDER,
                             empty_hash(self.hash_name))

    def binder(self, truncated_hello_hash: bytes) -> bytes:
        """The PSK binder over the partial ClientHello transcript (RFC 8446 §4.2.11.2)."""
        return finished_verify_data(self.hash_name, self.binder_key(), truncated_hello_hash)

    def client_early_traffic_secret(self, client_hello_hash: bytes) -> bytes:
        """``Derive-Secret(early, "c e traffic", ClientHello)``: the 0-RTT secret (RFC 8446 §7.1)."""
        return derive_secret(self.hash_name, self.early_secret, LABEL_C_E_TRAFFIC,
                             client_hello_hash)

    def resumption(self, client_finished_hash: bytes) -> None:
        """Derive ``resumption_master_secret`` over CH..client Finished (RFC 8446 §7.1)."""
        self.resumption_master_secret = derive_secret(
            self.hash_name, self.master_secret, LABEL_RES_MASTER, client_finished_hash)

    def ticket_psk(self, ticket_nonce: bytes) -> bytes:
        """The PSK of one ticket: HKDF-Expand-Label(rms, "resumption", nonce) (RFC 8446 §4.6.1)."""
        return hkdf_expand_label(self.hash_name, self.resumption_master_secret, LABEL_RESUMPTION,
                                 ticket_nonce, self.hash_len)
