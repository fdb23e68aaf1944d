"""Crafted client Initials for the censor tests, made with our own client code.

* :func:`plain_flight`: our QUIC client's first flight (no REALITY) for a given SNI;
* :func:`reality_flight`: our REALITY client's (``fingerprint`` minimal/chrome, ``carrier``);
* :func:`split_packets` / :func:`split_frames`: the same ClientHello cut across Initial packets
  or across CRYPTO frames of one packet (:mod:`quicreality.reality.probe`);
* :func:`v2_initial`: a QUIC v2 Initial (RFC 9369) carrying a ClientHello;
* :func:`ip`: an IPv4/UDP packet around a datagram.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from quicreality.quic.config import QuicConfiguration
from quicreality.quic.connection import QuicConnection
from quicreality.quic.crypto import (
    INITIAL_CIPHER_SUITE,
    QUIC_VERSION_2,
    CryptoContext,
    derive_initial_secrets,
)
from quicreality.reality.probe import crypto_frame, initial_datagrams, initial_packet, split
from quicreality.scenarios.censor import push_udp_packet
from quicreality.scenarios.censor.initial import HelloReader, open_client_datagram
from quicreality.tls.certificates import InsecureVerifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reality"))
import reality_helpers

CLIENT, SERVER = "10.99.1.2", "10.99.2.2"
BLOCKED = "blocked.quicreality.test"
ALLOWED = "www.quicreality.test"
DCID = bytes.fromhex("8394c8f03e515708")
SCID = bytes.fromhex("c0ffee00c0ffee00")


def _rng(seed: int):  # type: ignore[no-untyped-def]
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


def plain_flight(sni: str = BLOCKED, seed: int = 1) -> list[bytes]:
    """Our plain client's first flight to ``sni``."""
    cfg = QuicConfiguration(is_client=True, server_name=sni, alpn_protocols=["h3"], rng=_rng(seed),
                            wall_clock=lambda: 1_780_000_000.0, peer_verifier=InsecureVerifier())
    conn = QuicConnection(configuration=cfg)
    conn.connect(("10.99.2.2", 443), now=0.0)
    return [d for d, _ in conn.datagrams_to_send(now=0.0)]


def reality_flight(fingerprint: str = "minimal", carrier: str | None = None,
                   sni: str = ALLOWED) -> list[bytes]:
    """Our REALITY client's first flight (the session_id carrier with the minimal hello)."""
    kw = {"fingerprint": fingerprint, "server_name": sni}
    if carrier is not None:
        kw["carrier"] = carrier
    cfg = reality_helpers.client_configuration(**kw)
    return reality_helpers.first_flight(cfg)[1]


def hello_of(flight: list[bytes]) -> bytes:
    """The ClientHello bytes of a first flight."""
    r = HelloReader()
    for d in flight:
        r.feed(open_client_datagram(d))
    return bytes(r.assembly.data[:r.assembly.contiguous()])


def split_packets(hello: bytes, first: int) -> list[bytes]:
    """``hello`` in two Initial packets (two datagrams): ``first`` bytes, then the rest."""
    return initial_datagrams(split(hello, [first]), dcid=DCID, scid=SCID)


def split_frames(hello: bytes, first: int) -> bytes:
    """``hello`` in one Initial packet, as two CRYPTO frames (offset 0 and ``first``)."""
    frames = crypto_frame(0, hello[:first]) + crypto_frame(first, hello[first:])
    return initial_packet(frames, dcid=DCID, scid=SCID, packet_number=0, pad_to=1200)


def raw_frames_initial(frames: bytes) -> bytes:
    """One v1 Initial carrying exactly ``frames`` (then padding to 1200 bytes)."""
    return initial_packet(frames, dcid=DCID, scid=SCID, packet_number=0, pad_to=1200)


def v2_initial(hello: bytes, dcid: bytes = DCID) -> bytes:
    """A QUIC v2 Initial (type bits 0b01, RFC 9369 §3.2; keys §3.3) with ``hello`` in one frame."""
    payload = crypto_frame(0, hello)
    pn_len = 2
    header_len = 1 + 4 + 1 + len(dcid) + 1 + len(SCID) + 1 + 2 + pn_len
    payload += bytes(max(0, 1200 - header_len - len(payload) - 16))
    length = pn_len + len(payload) + 16
    header = (bytes([0xC0 | (0b01 << 4) | (pn_len - 1)]) + QUIC_VERSION_2.to_bytes(4, "big")
              + bytes([len(dcid)]) + dcid + bytes([len(SCID)]) + SCID + b"\x00"
              + (0x4000 | length).to_bytes(2, "big") + (0).to_bytes(pn_len, "big"))
    client_secret, _ = derive_initial_secrets(dcid, QUIC_VERSION_2)
    ctx = CryptoContext()
    ctx.setup(INITIAL_CIPHER_SUITE, client_secret, QUIC_VERSION_2)
    return ctx.encrypt_packet(header, payload, 0)


def ip(datagram: bytes, sport: int = 40000, dport: int = 443, *, to_client: bool = False,
       client: str = CLIENT) -> bytes:
    """An IPv4/UDP packet client:sport -> server:dport (or the reply with ``to_client``)."""
    if to_client:
        return push_udp_packet(SERVER, dport, client, sport, datagram)
    return push_udp_packet(client, sport, SERVER, dport, datagram)
