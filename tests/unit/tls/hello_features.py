"""Test helper: the ClientHello features the fingerprint tool reads from tshark, computed here from
the hello's bytes (sans-IO, no tshark), with the same names as ``docs/data/chrome156-hello.json``,
and our first flight's ClientHello decrypted with the public Initial keys (RFC 9001 §5.2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quicreality.analysis.fingerprint_compare import Profile
from quicreality.analysis.fingerprint_features import (
    GREASE,
    codepoint,
    is_grease16,
    is_grease_tp,
    is_grease_version,
    ja4,
)
from quicreality.quic.crypto import CryptoPair
from quicreality.quic.frames import FrameType, pull_frame_body
from quicreality.quic.packet import PACKET_TYPE_INITIAL, pull_quic_header
from quicreality.quic.transport_params import pull_parameter_list
from quicreality.tls import messages as m
from quicreality.tls.ech import extension_spans
from quicreality.wire.buffer import Buffer

CHROME_PROFILE = Profile.from_json(json.loads(
    (Path(__file__).resolve().parents[3] / "docs" / "data" / "chrome156-hello.json").read_text()))

#: tshark's names of the transport parameters Chrome sends.
_TP_NAMES = {
    0x1: "max_idle_timeout", 0x3: "max_udp_payload_size", 0x4: "initial_max_data",
    0x5: "initial_max_stream_data_bidi_local", 0x6: "initial_max_stream_data_bidi_remote",
    0x7: "initial_max_stream_data_uni", 0x8: "initial_max_streams_bidi",
    0x9: "initial_max_streams_uni", 0xA: "ack_delay_exponent", 0xB: "max_ack_delay",
    0xE: "active_connection_id_limit", 0x20: "max_datagram_frame_size",
}


def _cp(v: int) -> str:
    return GREASE if is_grease16(v) else codepoint(v)


def _varint_size(v: int) -> int:
    return 1 if v < 0x40 else 2 if v < 0x4000 else 4 if v < 0x40000000 else 8


def _tp_features(data: bytes) -> dict[str, Any]:
    f: dict[str, Any] = {}
    ids = []
    for pid, value in pull_parameter_list(data):
        if is_grease_tp(pid):
            ids.append(GREASE)
            f["client.quic.tp.GREASE.len"] = len(value)
            f["client.quic.tp.GREASE.bytes"] = (_varint_size(pid) + _varint_size(len(value))
                                                + len(value))
            continue
        ids.append(f"0x{pid:x}")
        if pid in _TP_NAMES:
            f[f"client.quic.tp.{_TP_NAMES[pid]}"] = Buffer(data=value).pull_uint_var()
        elif pid == 0xF:
            f["client.quic.tp.initial_source_connection_id.len"] = len(value)
        elif pid == 0x11:
            versions = [int.from_bytes(value[i:i + 4], "big") for i in range(0, len(value), 4)]
            names = [GREASE if is_grease_version(v) else f"0x{v:08x}" for v in versions[1:]]
            f["client.quic.tp.version_information.chosen"] = [f"0x{versions[0]:08x}"]
            f["client.quic.tp.version_information.others"] = names
            f["client.quic.tp.version_information.others_sorted"] = sorted(names)
        elif pid == 0x3128:
            f["client.quic.tp.google_connection_options"] = value.hex()
        else:
            f[f"client.quic.tp.0x{pid:x}"] = value.hex()
    f["client.quic.tp_ids"] = ids
    f["client.quic.tp_ids_sorted"] = sorted(ids, key=lambda t: 1 << 62 if t == GREASE
                                            else int(t, 16))
    return f


def hello_features(raw: bytes) -> dict[str, Any]:
    """The ``client.tls.*``, ``client.quic.tp*`` and JA4 features of one ClientHello message."""
    hello = m.pull_client_hello(Buffer(data=raw))
    spans = extension_spans(raw)
    assert spans is not None
    bodies = {t: raw[a:b] for t, a, b in spans}
    f: dict[str, Any] = {
        "client.tls.handshake_len": len(raw) - 4,
        "client.tls.legacy_version": f"0x{hello.legacy_version:04x}",
        "client.tls.session_id_len": len(hello.legacy_session_id),
        "client.tls.cipher_suites": [_cp(c) for c in hello.cipher_suites],
        "client.tls.extensions": [_cp(t) for t, _, _ in spans],
        "client.tls.extensions_sorted": sorted(_cp(t) for t, _, _ in spans),
        "client.tls.extension_count": len(spans),
        "client.tls.extension_lengths": {_cp(t): b - a for t, a, b in spans},
        "client.tls.server_name": hello.server_name,
        "client.tls.alpn": list(hello.alpn_protocols or ()),
        "client.tls.supported_versions": [_cp(v) for v in hello.supported_versions or ()],
        "client.tls.supported_groups": [_cp(g) for g in hello.supported_groups or ()],
        "client.tls.key_share_groups": [_cp(e.group) for e in hello.key_share or ()],
        "client.tls.key_share_sizes": [len(e.key_exchange) for e in hello.key_share or ()],
        "client.tls.signature_algorithms": [_cp(s) for s in hello.signature_algorithms or ()],
        "client.tls.psk_modes": list(hello.psk_key_exchange_modes or ()),
    }
    cc = bodies.get(m.ExtensionType.COMPRESS_CERTIFICATE)
    f["client.tls.compress_certificate"] = (
        [int.from_bytes(cc[i:i + 2], "big") for i in range(1, len(cc), 2)] if cc else [])
    alps = bodies.get(m.ExtensionType.APPLICATION_SETTINGS)
    f["client.tls.alps"] = ({"codepoint": "0x44cd", "protocols": list(m.parse_alpn(alps))}
                            if alps is not None else None)
    ech = bodies.get(m.ExtensionType.ENCRYPTED_CLIENT_HELLO)
    f["client.tls.ech"] = ech is not None
    ech_bytes = 0
    if ech is not None:
        ech_bytes = 4 + len(ech)
        enc_len = int.from_bytes(ech[6:8], "big")
        f.update({
            "client.tls.ech.type": ech[0],
            "client.tls.ech.kdf": f"0x{int.from_bytes(ech[1:3], 'big'):04x}",
            "client.tls.ech.aead": f"0x{int.from_bytes(ech[3:5], 'big'):04x}",
            "client.tls.ech.enc_len": enc_len,
            "client.tls.ech.payload_len": int.from_bytes(ech[8 + enc_len:10 + enc_len], "big"),
        })
    tp = bodies.get(m.ExtensionType.QUIC_TRANSPORT_PARAMETERS)
    if tp is not None:
        f.update(_tp_features(tp))
    f["client.tls.extension_lengths_stable"] = {
        t: n for t, n in f["client.tls.extension_lengths"].items()
        if t not in (GREASE, "0xfe0d", "0x0039", "0x0015")}
    f["client.tls.handshake_len_stable"] = (f["client.tls.handshake_len"] - ech_bytes
                                            - f.get("client.quic.tp.GREASE.bytes", 0))
    f["client.ja4"], f["client.ja4_r"] = ja4(f)
    return f


def first_client_hello(datagrams: list[bytes]) -> bytes:
    """The ClientHello a client's first flight carries (Initial packets opened with the keys of
    the first Initial's DCID, CRYPTO frames put together by offset)."""
    chunks: dict[int, bytes] = {}
    crypto: CryptoPair | None = None
    dcid = b""
    for data in datagrams:
        buf = Buffer(data=data)
        while not buf.eof():
            start = buf.tell()
            header = pull_quic_header(buf, host_cid_length=None)
            buf.seek(header.packet_end)
            if header.packet_type != PACKET_TYPE_INITIAL:
                continue
            if crypto is None:
                dcid = header.destination_cid
                crypto = CryptoPair()
                crypto.setup_initial(dcid, is_client=False, version=header.version)
            _, payload, _ = crypto.decrypt_packet(data[start:header.packet_end],
                                                  header.pn_offset - start, 0)
            frames = Buffer(data=payload)
            while not frames.eof():
                frame_type = frames.pull_uint_var()
                frame = pull_frame_body(frames, frame_type)
                if frame_type == FrameType.CRYPTO:
                    chunks[frame.offset] = frame.data  # type: ignore[union-attr]
    hello = bytearray()
    while len(hello) in chunks:
        hello += chunks[len(hello)]
    total = 4 + int.from_bytes(hello[1:4], "big")
    assert len(hello) >= total, "the first flight does not hold a whole ClientHello"
    return bytes(hello[:total])
