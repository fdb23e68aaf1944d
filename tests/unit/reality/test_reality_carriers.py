"""Where the REALITY token travels: the session_id (Xray's) or the GREASE ECH payload of a
Chrome-shaped hello. Sealing, the AAD rule, the server's search, and the gated endpoint."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519
from reality_helpers import (
    CLIENT_EPHEMERAL,
    SERVER_PUBLIC,
    SHORT_ID,
    SNI,
    VERSION,
    WALL,
    RealityPair,
    client_configuration,
    plain_client_hello,
    seeded_rng,
    server_config,
)

from quicreality.quic import events
from quicreality.quic.crypto import CryptoPair
from quicreality.quic.frames import FrameType, pull_frame_body
from quicreality.quic.packet import PACKET_TYPE_INITIAL, pull_quic_header
from quicreality.reality import token as t
from quicreality.reality.auth import Reason, ReplayCache, verify_client_hello
from quicreality.reality.gate import Accept, Forward
from quicreality.reality.keys import generate_key_pair
from quicreality.reality.seal import RealityClientHook, reality_client_configuration
from quicreality.reality.token import Carrier
from quicreality.tls import messages as m
from quicreality.tls.chrome_hello import ChromeHello
from quicreality.tls.ech import ech_payload_span
from quicreality.tls.key_exchange import HybridPrivateKey, generate_private_key, public_bytes
from quicreality.wire.buffer import Buffer

BOB = x25519.X25519PrivateKey.from_private_bytes(CLIENT_EPHEMERAL)


def chrome_shaped(session_id: bytes = b"", seed: int = 4) -> bytearray:
    """Our test hello (Bob's X25519 share) re-encoded in Chrome's shape: GREASE ECH included."""
    return bytearray(ChromeHello(seeded_rng(seed)).shape(bytes(plain_client_hello(
        session_id=session_id))))


def seal(raw: bytearray, carrier: Carrier, server_public: bytes = SERVER_PUBLIC,
         shares: dict | None = None) -> RealityClientHook:
    hook = RealityClientHook(server_public, SHORT_ID, wall_clock=lambda: WALL, version=VERSION,
                             carrier=carrier)
    hook(raw, random=bytes(raw[6:38]), key_shares=shares or {m.Group.X25519: BOB})
    return hook


def judge(raw: bytes, cache: ReplayCache | None = None):  # type: ignore[no-untyped-def]
    return verify_client_hello(raw, server_config(), WALL, cache)


def test_ech_carrier_token_is_the_first_32_payload_bytes_and_the_rest_stays_random() -> None:
    raw = chrome_shaped()
    before = bytes(raw)
    start, _ = ech_payload_span(raw) or (0, 0)
    seal(raw, Carrier.ECH)
    assert t.token_span(raw, Carrier.ECH) == (start, start + 32)
    assert raw[:start] == before[:start] and raw[start + 32:] == before[start + 32:]
    assert raw[start:start + 32] != before[start:start + 32]
    assert len(raw) == len(before) and raw[38] == 0  # no session_id at all
    v = judge(bytes(raw))
    assert v.reason is Reason.ACCEPT and v.carrier is Carrier.ECH
    assert v.describe()["carrier"] == "ech"


def test_ech_carrier_aad_is_the_hello_with_exactly_the_token_zeroed() -> None:
    raw = chrome_shaped()
    hook = seal(raw, Carrier.ECH)
    start, end = t.token_span(raw, Carrier.ECH) or (0, 0)
    zeroed = bytes(raw[:start]) + bytes(32) + bytes(raw[end:])
    assert t.aad_of(raw, (start, end)) == zeroed
    assert hook.auth_key is not None
    again = t.seal_token(hook.auth_key, bytes(raw[6:38]), t.push_plaintext(hook.plaintext),  # type: ignore[arg-type]
                         zeroed)
    assert again == bytes(raw[start:end])


def test_every_byte_outside_the_ech_token_is_bound() -> None:
    raw = chrome_shaped()
    hook = seal(raw, Carrier.ECH)
    span = t.token_span(raw, Carrier.ECH)
    assert span is not None and hook.auth_key is not None
    for i in range(len(raw)):
        mutated = bytearray(raw)
        mutated[i] ^= 0x01
        if span[0] <= i < span[1]:
            continue
        new_span = t.token_span(mutated, Carrier.ECH)
        opened = None if new_span is None else t.open_client_hello(bytes(mutated), hook.auth_key,
                                                                    new_span)
        assert opened is None, f"byte {i} is not bound"


def test_session_id_carrier_in_a_chrome_hello_is_found_first() -> None:
    raw = chrome_shaped(session_id=bytes(32))
    seal(raw, Carrier.SESSION_ID)
    v = judge(bytes(raw))
    assert v.reason is Reason.ACCEPT and v.carrier is Carrier.SESSION_ID


@pytest.mark.parametrize("carrier", list(Carrier))
def test_wrong_key_fails_the_aead_with_either_carrier(carrier: Carrier) -> None:
    raw = chrome_shaped(session_id=bytes(32) if carrier is Carrier.SESSION_ID else b"")
    seal(raw, carrier, server_public=generate_key_pair(seeded_rng(3)).public_key)
    assert judge(bytes(raw)).reason is Reason.AEAD_OPEN_FAILED


def test_a_token_moved_from_the_session_id_into_the_ech_payload_does_not_open() -> None:
    raw = chrome_shaped(session_id=bytes(32))
    seal(raw, Carrier.SESSION_ID)
    start, end = t.token_span(raw, Carrier.ECH) or (0, 0)
    moved = bytearray(raw)
    moved[start:end] = raw[39:71]
    moved[39:71] = bytes(32)
    assert judge(bytes(moved)).reason is Reason.AEAD_OPEN_FAILED


def test_ech_carrier_replay_is_refused() -> None:
    raw = chrome_shaped()
    seal(raw, Carrier.ECH)
    cache = ReplayCache(16, 60.0)
    assert judge(bytes(raw), cache).reason is Reason.ACCEPT
    assert judge(bytes(raw), cache).reason is Reason.REPLAY


def test_a_hello_with_neither_carrier_is_bad_session_id() -> None:
    v = judge(bytes(plain_client_hello(session_id=b"")))
    assert v.reason is Reason.BAD_SESSION_ID and "no token carrier" in v.detail


def test_ech_carrier_needs_an_ech_extension() -> None:
    with pytest.raises(ValueError, match="ech carrier"):
        seal(plain_client_hello(session_id=b""), Carrier.ECH)
    with pytest.raises(ValueError, match="chrome fingerprint"):
        client_configuration(fingerprint="minimal", carrier="ech")


def test_key_comes_from_the_hybrid_share_when_there_is_no_x25519_share() -> None:
    """Spec §2.1: without a standalone X25519 share the client uses the hybrid's X25519 half,
    which is what the server takes (the last 32 bytes of the 1216-byte 0x11ec share)."""
    hybrid = generate_private_key(m.Group.X25519MLKEM768, seeded_rng(8))
    assert isinstance(hybrid, HybridPrivateKey)
    share = m.KeyShareEntry(m.Group.X25519MLKEM768, public_bytes(hybrid))
    raw = bytearray(ChromeHello(seeded_rng(4)).shape(bytes(plain_client_hello(
        session_id=b"", key_share=(share,)))))
    seal(raw, Carrier.ECH, shares={m.Group.X25519MLKEM768: hybrid})
    assert judge(bytes(raw)).reason is Reason.ACCEPT


# --- end to end through the gated endpoint, on virtual time ------------------------------------


def _server_hello_group(datagrams: list[bytes], odcid: bytes) -> int:
    """The key_share group of the ServerHello in the server's first Initial (public keys)."""
    crypto = CryptoPair()
    crypto.setup_initial(odcid, is_client=True, version=1)
    chunks: dict[int, bytes] = {}
    for data in datagrams:
        buf = Buffer(data=data)
        while not buf.eof():
            start = buf.tell()
            header = pull_quic_header(buf, host_cid_length=None)
            buf.seek(header.packet_end)
            if header.packet_type != PACKET_TYPE_INITIAL:
                continue
            _, payload, _ = crypto.decrypt_packet(data[start:header.packet_end],
                                                  header.pn_offset - start, 0)
            frames = Buffer(data=payload)
            while not frames.eof():
                kind = frames.pull_uint_var()
                frame = pull_frame_body(frames, kind)
                if kind == FrameType.CRYPTO:
                    chunks[frame.offset] = frame.data  # type: ignore[union-attr]
    hello = b""
    while len(hello) in chunks:
        hello += chunks[len(hello)]
    sh = m.pull_server_hello(Buffer(data=hello[:4 + int.from_bytes(hello[1:4], "big")]))
    assert sh.key_share is not None
    return sh.key_share.group


def _run(pair: RealityPair) -> list[object]:
    seen: list[object] = []

    def until() -> bool:
        seen.extend(pair.client_events())
        return any(isinstance(e, (events.HandshakeCompleted, events.ConnectionTerminated))
                   for e in seen)

    pair.run(until)
    return seen


@pytest.mark.parametrize("carrier", ["ech", "session_id"])
def test_chrome_reality_client_is_accepted_with_either_carrier_and_gets_the_hybrid(
        carrier: str) -> None:
    cfg = client_configuration(fingerprint="chrome", carrier=carrier)
    pair = RealityPair(cfg)
    seen = _run(pair)
    assert any(isinstance(e, events.HandshakeCompleted) for e in seen), seen
    accepts = [d for d in pair.decisions if isinstance(d, Accept)]
    assert len(accepts) == 1 and accepts[0].verdict.carrier is Carrier(carrier)
    assert len(accepts[0].datagrams) == 2  # Chrome's hello needs two Initials
    odcid = pair.client.original_destination_connection_id
    assert _server_hello_group(pair.to_client, odcid) == m.Group.X25519MLKEM768


@pytest.mark.parametrize("carrier", ["ech", "session_id"])
def test_chrome_reality_client_with_a_wrong_key_is_forwarded(carrier: str) -> None:
    other = generate_key_pair(seeded_rng(3))
    pair = RealityPair(client_configuration(fingerprint="chrome", carrier=carrier,
                                            server_public_key=other.public_key))
    _run(pair)
    assert not pair.endpoint.connections and pair.server_replies == []
    forwards = [d for d in pair.decisions if isinstance(d, Forward) and d.verdict is not None]
    assert [f.verdict.reason for f in forwards] == [Reason.AEAD_OPEN_FAILED]


def test_library_default_is_chrome_with_the_ech_carrier() -> None:
    base = client_configuration().__class__(is_client=True, rng=seeded_rng(1),
                                             wall_clock=lambda: WALL)
    cfg = reality_client_configuration(base, server_public_key=SERVER_PUBLIC, short_id=SHORT_ID,
                                       server_name=SNI)
    assert cfg.fingerprint == "chrome" and cfg.legacy_session_id_length == 0
    assert cfg.peer_verifier.carrier is Carrier.ECH
