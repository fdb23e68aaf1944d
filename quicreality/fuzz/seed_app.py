"""Seeds for the targets above QUIC: HTTP/3 + QPACK, the relay preface, the REALITY gate, the
qlog loader (see :mod:`.corpus`)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import TYPE_CHECKING

from ..wire.buffer import encode_uint_var
from .harness import join_records

if TYPE_CHECKING:
    from .corpus import Capture

__all__ = ["gunzip_head", "seeds_gate", "seeds_h3", "seeds_qlog", "seeds_relay"]

ROOT = Path(__file__).resolve().parents[2]


def _frame(frame_type: int, payload: bytes) -> bytes:
    return encode_uint_var(frame_type) + encode_uint_var(len(payload)) + payload


def _rec(sel: int, flags: int, data: bytes) -> bytes:
    return bytes([sel, flags]) + data


def seeds_h3() -> list[bytes]:
    """Requests (server role) and responses (client role), with and without the dynamic table."""
    import pylsqpack

    settings = _frame(0x04, encode_uint_var(0x01) + encode_uint_var(4096)
                      + encode_uint_var(0x07) + encode_uint_var(16)
                      + encode_uint_var(0x21) + encode_uint_var(0))  # a reserved setting
    request = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"localhost"),
               (b":path", b"/index.html"), (b"user-agent", b"fuzz/1"), (b"x-custom", b"v" * 40)]
    response = [(b":status", b"200"), (b"content-type", b"text/plain"), (b"server", b"fuzz")]
    out = []
    for role, heads, uni in ((0, request, 0), (1, response, 1)):
        static = pylsqpack.Encoder()
        _, block = static.encode(0, heads)
        plain = [_rec(uni | 0, 0, b"\x00" + settings),  # control stream (index 0)
                 _rec(0, 0, _frame(0x01, block) + _frame(0x00, b"hello")),
                 _rec(0, 1, _frame(0x00, b" world"))]
        out.append(bytes([role]) + join_records(plain))
        dyn = pylsqpack.Encoder()
        enc_setup = dyn.apply_settings(max_table_capacity=4096, blocked_streams=16)
        enc_data, block = dyn.encode(4, heads)
        dynamic = [_rec(uni | 0, 0, b"\x00" + settings),
                   _rec(uni | 4, 0, b"\x02" + enc_setup + enc_data),  # encoder stream
                   _rec(uni | 8, 0, b"\x03"),  # decoder stream
                   _rec(4, 0, _frame(0x01, block)),
                   _rec(4, 1, _frame(0x00, b"body") + _frame(0x01, block))]  # trailers
        out.append(bytes([role]) + join_records(dynamic))
        blocked = [_rec(uni | 0, 0, b"\x00" + settings), _rec(4, 0, _frame(0x01, block)),
                   _rec(uni | 4, 0, b"\x02" + enc_setup + enc_data), _rec(4, 1, b"")]
        out.append(bytes([role]) + join_records(blocked))
    goaway = [_rec(1, 0, b"\x00" + settings + _frame(0x07, encode_uint_var(4))
                   + _frame(0x0D, encode_uint_var(3)) + _frame(0x21, b"grease")),
              _rec(5, 0, b"\x21" + b"unknown stream type"), _rec(0, 2, b"\x01\x0c")]
    out.append(b"\x00" + join_records(goaway))
    return out


def seeds_relay() -> list[bytes]:
    """Prefaces of every kind and address type (whole and in pieces), statuses, datagrams."""
    from ..relay.protocol import (
        Destination,
        Kind,
        Preface,
        Status,
        StatusAnswer,
        encode_datagram,
        encode_preface,
        encode_status,
    )

    out = []
    for kind, host, port, ext in ((Kind.TCP, "127.0.0.1", 5201, b""),
                                  (Kind.UDP, "::1", 53, b""),
                                  (Kind.TCP, "example.com", 443, b"\x01\x02")):
        pre = encode_preface(Preface(kind, Destination(host, port), ext))
        out.append(b"\x00" + join_records([pre + b"payload"]))
        out.append(b"\x00" + join_records([pre[:3], pre[3:9], pre[9:]]))
    for status in Status:
        out.append(b"\x01" + join_records([encode_status(StatusAnswer(status, "why")) + b"x"]))
    out.append(b"\x02" + join_records([encode_datagram(0, b"dns"),
                                       encode_datagram(1 << 20, b"")]))
    return out


def _initial_records(datagrams: list[bytes], pn_base: int = 0) -> list[bytes]:
    """The client Initial packets of a first flight, opened, as gate records."""
    from ..quic.crypto import CryptoError, CryptoPair
    from ..quic.packet import PACKET_TYPE_INITIAL, QUIC_VERSION_1, pull_quic_header
    from ..wire.buffer import Buffer

    records = []
    for d in datagrams:
        buf = Buffer(data=d)
        while not buf.eof():
            try:
                start = buf.tell()
                h = pull_quic_header(buf, host_cid_length=8)
            except ValueError:
                break
            if h.packet_type == PACKET_TYPE_INITIAL:
                pair = CryptoPair()
                pair.setup_initial(h.destination_cid, is_client=False, version=QUIC_VERSION_1)
                try:
                    _, payload, pn = pair.decrypt_packet(d[start:h.packet_end],
                                                         h.pn_offset - start, 0)
                except CryptoError:
                    payload, pn = b"", 0
                if payload:
                    records.append(bytes([(pn + pn_base) & 0xFF, 0]) + payload.rstrip(b"\x00"))
            buf.seek(h.packet_end)
    return records


def seeds_gate(caps: list[Capture]) -> list[bytes]:
    """Sealed REALITY first flights (accepted), plain ones (fallback), real Chromium/curl ones."""
    from ..quic.config import QuicConfiguration
    from ..quic.connection import QuicConnection
    from ..reality.seal import reality_client_configuration
    from .pair import WALL, seeded_rng
    from .targets_app import REALITY_SHORT_ID, REALITY_SNI, reality_config

    out = []
    public = reality_config().public_key
    for seed, fingerprint in ((1, "minimal"), (2, "chrome")):
        base = QuicConfiguration(is_client=True, rng=seeded_rng(seed), wall_clock=lambda: WALL)
        cfg = reality_client_configuration(base, server_public_key=public,
                                           short_id=REALITY_SHORT_ID, server_name=REALITY_SNI,
                                           fingerprint=fingerprint)
        conn = QuicConnection(configuration=cfg)
        conn.connect(("203.0.113.1", 443), now=0.0)
        records = _initial_records([d for d, _ in conn.datagrams_to_send(now=0.0)])
        out.append(join_records(records))
        out.append(join_records(list(reversed(records))))  # reordered Initials
        if len(records) > 1:  # a retransmission and a second connection from the address
            out.append(join_records([*records, records[0],
                                     bytes([records[0][0], 2]) + records[0][2:]]))
    for cap in caps:
        grams = [d for from_client, d in cap.datagrams[:4] if from_client]
        records = _initial_records(grams)
        if records:
            out.append(join_records(records))
    return out


def seeds_qlog() -> list[bytes]:
    """The heads of committed qlogs of several producers, and small hand-made containers."""
    out = []
    seen: set[str] = set()
    for p in sorted((ROOT / "captures").rglob("*qlog.gz")):
        kind = f"{p.parent.name}:{p.name.split('.')[-2]}"
        if kind in seen:
            continue
        seen.add(kind)
        out.append(gunzip_head(p, 6000))
    out.append(b'{"qlog_version":"0.3","traces":[{"vantage_point":{"type":"client"},'
               b'"common_fields":{"reference_time":1000},"events":[{"time":1,"name":'
               b'"transport:packet_sent","data":{"header":{"packet_type":"1RTT",'
               b'"packet_number":3},"frames":[{"frame_type":"ack","acked_ranges":[[1,2]]}]}},'
               b'{"time":2,"name":"recovery:metrics_updated","data":{"cwnd":12000}}]}]}')
    out.append(b'\x1e{"qlog_version":"0.4","qlog_format":"JSON-SEQ","trace":{}}\n'
               b'\x1e{"time":0.5,"name":"quic:packet_received","data":{"header":'
               b'{"packet_type":"initial","packet_number":0},"raw":{"length":1200}}}\n')
    return out


def gunzip_head(path: Path, limit: int) -> bytes:
    """The first ``limit`` bytes (cut at a line end) of a possibly gzipped text file."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) <= limit:
        return raw
    cut = raw.rfind(b"\n", 0, limit)
    return raw[:cut + 1 if cut > 0 else limit]
