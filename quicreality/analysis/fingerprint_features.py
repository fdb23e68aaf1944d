"""Feature model of the QUIC fingerprint tool: tshark trees → flat ``{feature: value}`` dicts.

Every feature is a dotted name (``client.tls.extensions``) with a JSON value. Code points are
``"0x%04x"`` strings; GREASE values (RFC 8701 ``0x?a?a`` for TLS code points, ``31*N+27`` for QUIC
transport parameters, RFC 9000 §18.1, and ``0x?a?a?a?a`` for QUIC versions, RFC 9000 §15) are
replaced by ``"GREASE"``, so two hellos that differ only in their GREASE draws compare equal.
Random bytes (client random, key shares, the ECH payload, CID values) are never features; only
their lengths are.

The only bytes decoded here are the bodies tshark 4.0 shows as raw ``extension.data`` because it
does not know the extension: ALPS (``0x4469``/``0x44cd``: a u16-prefixed list of u8-prefixed
protocol names) and ECH (``0xfe0d``, draft-ietf-tls-esni §5: type, KDF, AEAD, config id, u16 enc,
u16 payload). Everything else is tshark's own dissection.

JA4 (FoxIO's recipe, https://github.com/FoxIO-LLC/ja4, ``technical_details/JA4.md``) is computed
by :func:`ja4` from the features; see docs/camouflage.md for the exact recipe.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Sequence
from typing import Any

from .fingerprint_tshark import FirstFlights, Node

__all__ = [
    "GREASE",
    "client_features",
    "codepoint",
    "is_grease16",
    "is_grease_tp",
    "is_grease_version",
    "ja4",
    "server_features",
]

GREASE = "GREASE"
_HRR_RANDOM = "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
_FRAME_LETTERS = {0: "P", 1: "I", 2: "A", 3: "A", 6: "C"}
_TP_LABEL = re.compile(r"^Parameter: (?P<name>.+?) \(len=\d+\)")
_TLS_VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3"}
_ALPS = (0x4469, 0x44CD)
_ECH = 0xFE0D


def is_grease16(v: int) -> bool:
    """RFC 8701 GREASE for 16-bit TLS code points: ``0x?a?a`` with equal bytes."""
    return (v & 0x0F0F) == 0x0A0A and (v >> 8) == (v & 0xFF)


def is_grease_tp(v: int) -> bool:
    """A reserved QUIC transport parameter ID: ``31 * N + 27`` (RFC 9000 §18.1)."""
    return v >= 27 and (v - 27) % 31 == 0


def is_grease_version(v: int) -> bool:
    """A reserved QUIC version: ``0x?a?a?a?a`` (RFC 9000 §15)."""
    return (v & 0x0F0F0F0F) == 0x0A0A0A0A


def codepoint(v: int | str) -> str:
    """``"0x%04x"`` of a 16-bit TLS code point, or ``"GREASE"``."""
    n = int(v, 0) if isinstance(v, str) else v
    return GREASE if is_grease16(n) else f"0x{n:04x}"


def _int(v: Any) -> int:
    return int(str(v), 0)


def _hexbytes(v: Any) -> bytes:
    return bytes.fromhex(str(v or "").replace(":", ""))


# ---- the client side ----------------------------------------------------------------------------


def _quic_packets(layers: Node) -> list[Node]:
    return [q for q in layers.all("quic") if isinstance(q, Node)]


def _initial_packets(trees: dict[int, Node], frames: Iterable[int]) -> list[Node]:
    out = []
    for n in frames:
        if n in trees:
            out += [q for q in _quic_packets(trees[n]) if q.get("quic.long.packet_type") == "0"]
    return out


def _handshakes(trees: dict[int, Node], frames: Iterable[int]) -> list[Node]:
    out: list[Node] = []
    for n in frames:
        if n in trees:
            out += trees[n].nodes("tls.handshake")
    return [h for h in out if h.get("tls.handshake.type") is not None]


def _extensions(hello: Node) -> list[Node]:
    return [v for _, v in hello.items_with_prefix("Extension: ") if isinstance(v, Node)]


def _ext_type(ext: Node) -> int:
    return _int(ext.get("tls.handshake.extension.type"))


def _alps_protocols(data: bytes) -> list[str]:
    """ALPS body: u16 length, then u8-prefixed protocol names."""
    body, out = data[2:2 + int.from_bytes(data[:2], "big")], []
    while body:
        n = body[0]
        out.append(body[1:1 + n].decode("ascii", "replace"))
        body = body[1 + n:]
    return out


def _ech_outer(data: bytes) -> dict[str, Any]:
    """ECH ClientHello outer body: type, KDF, AEAD, config id, enc and payload lengths."""
    if len(data) < 10 or data[0] != 0:
        return {"type": data[0] if data else None, "len": len(data)}
    enc_len = int.from_bytes(data[6:8], "big")
    rest = data[8 + enc_len:]
    return {"type": 0, "kdf": f"0x{int.from_bytes(data[1:3], 'big'):04x}",
            "aead": f"0x{int.from_bytes(data[3:5], 'big'):04x}", "enc_len": enc_len,
            "payload_len": int.from_bytes(rest[:2], "big") if len(rest) >= 2 else None}


def _varint_size(v: int) -> int:
    """Bytes of the minimal QUIC varint of ``v`` (RFC 9000 §16)."""
    return 1 if v < 0x40 else 2 if v < 0x4000 else 4 if v < 0x40000000 else 8


def _tp_sort_key(tid: str) -> int:
    return 1 << 62 if tid == GREASE else int(tid, 16)


def transport_parameters(ext: Node, prefix: str) -> dict[str, Any]:
    """Features of a ``quic_transport_parameters`` extension (IDs in order, sorted, values)."""
    ids: list[str] = []
    values: dict[str, Any] = {}
    for label, p in ext.items_with_prefix("Parameter: "):
        if not isinstance(p, Node):
            continue
        tid = _int(p.get("tls.quic.parameter.type"))
        length = _int(p.get("tls.quic.parameter.length") or 0)
        if is_grease_tp(tid):
            ids.append(GREASE)
            values[f"{prefix}.tp.GREASE.len"] = length
            values[f"{prefix}.tp.GREASE.bytes"] = _varint_size(tid) + _varint_size(length) + length
            continue
        ids.append(f"0x{tid:x}")
        m = _TP_LABEL.match(label)
        name = m.group("name") if m and not m.group("name").startswith("Unknown") else f"0x{tid:x}"
        decoded = [v for k, v in p.pairs if k.startswith("tls.quic.parameter.")
                   and k not in ("tls.quic.parameter.type", "tls.quic.parameter.length",
                                 "tls.quic.parameter.value")]
        key = f"{prefix}.tp.{name}"
        if name == "version_information":
            chosen = [_int(v) for v in p.find("tls.quic.parameter.vi.chosen_version")]
            others = [_int(v) for v in p.find("tls.quic.parameter.vi.other_version")]
            names = [GREASE if is_grease_version(v) else f"0x{v:08x}" for v in others]
            values[f"{key}.chosen"] = [f"0x{v:08x}" for v in chosen]
            values[f"{key}.others"] = names
            values[f"{key}.others_sorted"] = sorted(names)
        elif name in ("initial_source_connection_id", "original_destination_connection_id",
                      "retry_source_connection_id", "stateless_reset_token", "preferred_address"):
            values[f"{key}.len"] = length
        elif decoded and isinstance(decoded[0], str) and decoded[0].isdigit():
            values[key] = int(decoded[0])
        else:
            values[key] = str(p.get("tls.quic.parameter.value") or "").replace(":", "")
    out: dict[str, Any] = {f"{prefix}.tp_ids": ids,
                           f"{prefix}.tp_ids_sorted": sorted(ids, key=_tp_sort_key)}
    out.update(values)
    return out


def _client_hello(hello: Node) -> dict[str, Any]:
    f: dict[str, Any] = {}
    f["client.tls.handshake_len"] = _int(hello.get("tls.handshake.length"))
    f["client.tls.legacy_version"] = str(hello.get("tls.handshake.version"))
    f["client.tls.session_id_len"] = _int(hello.get("tls.handshake.session_id_length") or 0)
    f["client.tls.cipher_suites"] = [codepoint(c) for c in hello.find("tls.handshake.ciphersuite")]
    exts = _extensions(hello)
    types = [codepoint(_ext_type(e)) for e in exts]
    f["client.tls.extensions"] = types
    f["client.tls.extensions_sorted"] = sorted(types)
    f["client.tls.extension_count"] = len(types)
    f["client.tls.extension_lengths"] = {t: _int(e.get("tls.handshake.extension.len"))
                                         for t, e in zip(types, exts, strict=False)}
    names = hello.find("tls.handshake.extensions_server_name")
    f["client.tls.server_name"] = names[0] if names else None
    f["client.tls.alpn"] = hello.find("tls.handshake.extensions_alpn_str")
    f["client.tls.supported_versions"] = [
        codepoint(v) for v in hello.find("tls.handshake.extensions.supported_version")]
    f["client.tls.supported_groups"] = [
        codepoint(g) for g in hello.find("tls.handshake.extensions_supported_group")]
    shares = [n for k, n in (hello.first("Key Share extension") or Node([])).pairs
              if k.startswith("Key Share Entry") and isinstance(n, Node)]
    f["client.tls.key_share_groups"] = [codepoint(s.get("tls.handshake.extensions_key_share_group"))
                                        for s in shares]
    f["client.tls.key_share_sizes"] = [
        _int(s.get("tls.handshake.extensions_key_share_key_exchange_length")) for s in shares]
    sig_ext = next((e for e in exts if _ext_type(e) == 13), None)
    f["client.tls.signature_algorithms"] = [
        codepoint(s) for s in (sig_ext.find("tls.handshake.sig_hash_alg") if sig_ext else [])]
    f["client.tls.psk_modes"] = [_int(m) for m in hello.find("tls.extension.psk_ke_mode")]
    f["client.tls.compress_certificate"] = [
        _int(a) for a in hello.find("tls.compress_certificate.algorithm")]
    alps = next((e for e in exts if _ext_type(e) in _ALPS), None)
    f["client.tls.alps"] = (
        {"codepoint": codepoint(_ext_type(alps)),
         "protocols": _alps_protocols(_hexbytes(alps.get("tls.handshake.extension.data")))}
        if alps is not None and alps.get("tls.handshake.extension.data") is not None else None)
    ech = next((e for e in exts if _ext_type(e) == _ECH), None)
    f["client.tls.ech"] = ech is not None
    ech_bytes = 0
    if ech is not None:
        ech_bytes = 4 + _int(ech.get("tls.handshake.extension.len"))
        for k, v in _ech_outer(_hexbytes(ech.get("tls.handshake.extension.data"))).items():
            f[f"client.tls.ech.{k}"] = v
    tp = next((e for e in exts if _ext_type(e) == 57), None)
    if tp is not None:
        f.update(transport_parameters(tp, "client.quic"))
    # what stays when the per-connection random sizes (ECH GREASE payload, the GREASE transport
    # parameter) are taken out: constant for a client whose only size randomness is those two
    f["client.tls.extension_lengths_stable"] = {
        t: n for t, n in f["client.tls.extension_lengths"].items()
        if t not in (GREASE, "0xfe0d", "0x0039", "0x0015")}
    f["client.tls.handshake_len_stable"] = (f["client.tls.handshake_len"] - ech_bytes
                                            - f.get("client.quic.tp.GREASE.bytes", 0))
    return f


def _frame_types(packet: Node) -> list[int]:
    return [_int(fr.get("quic.frame_type")) for fr in packet.all("quic.frame")
            if isinstance(fr, Node)]


def _crypto_ranges(packet: Node) -> list[tuple[int, int]]:
    return [(_int(fr.get("quic.crypto.offset")), _int(fr.get("quic.crypto.length")))
            for fr in packet.all("quic.frame")
            if isinstance(fr, Node) and fr.get("quic.frame_type") == "6"]


def client_features(flights: FirstFlights, trees: dict[int, Node]) -> dict[str, Any]:
    """The client's features of one flow: first-flight layout, ClientHello, transport parameters.

    Args:
        flights: The flow's first flights (:func:`.fingerprint_tshark.first_flights`).
        trees: Frame trees covering at least the client's first flight.
    """
    frames = [d.number for d in flights.client]
    initials = _initial_packets(trees, frames)
    f: dict[str, Any] = {}
    first = initials[0] if initials else Node([])
    f["client.quic.version"] = flights.client[0].version if flights.client else None
    f["client.quic.dcid_len"] = _int(first.get("quic.dcil") or 0)
    f["client.quic.scid_len"] = _int(first.get("quic.scil") or 0)
    f["client.quic.token_len"] = _int(first.get("quic.token_length") or 0)
    f["client.flight.complete"] = flights.client_hello_complete
    f["client.flight.datagrams"] = len(flights.client)
    f["client.flight.sizes"] = [d.size for d in flights.client]
    f["client.flight.coalescing"] = [d.coalescing for d in flights.client]
    f["client.flight.gaps_ms"] = [round((b.time - a.time) * 1000, 1)
                                  for a, b in itertools.pairwise(flights.client)]
    f["client.flight.initial_packets"] = len(initials)
    f["client.flight.packet_numbers"] = [_int(p.get("quic.packet_number") or -1) for p in initials]
    f["client.flight.pn_lengths"] = [_int(p.get("quic.packet_number_length") or 0) + 1
                                     for p in initials]
    layouts = [_frame_types(p) for p in initials]
    f["client.flight.frame_layout"] = ["".join(_FRAME_LETTERS.get(t, "?") for t in lay)
                                       for lay in layouts]
    f["client.flight.crypto_frames"] = [lay.count(6) for lay in layouts]
    f["client.flight.ping_frames"] = [lay.count(1) for lay in layouts]
    f["client.flight.has_ping"] = any(1 in lay for lay in layouts)
    f["client.flight.has_padding"] = any(0 in lay for lay in layouts)
    f["client.flight.frame_types"] = sorted({_FRAME_LETTERS.get(t, f"0x{t:x}")
                                             for lay in layouts for t in lay})
    ranges = [r for p in initials for r in _crypto_ranges(p)]
    f["client.flight.crypto_in_order"] = all(
        a[0] + a[1] == b[0] for a, b in itertools.pairwise(ranges)) and (
        not ranges or ranges[0][0] == 0)
    hello = next((h for h in _handshakes(trees, frames) if h.get("tls.handshake.type") == "1"), None)
    if hello is not None:
        f.update(_client_hello(hello))
        a, r = ja4(f)
        f["client.ja4"] = a
        f["client.ja4_r"] = r
    return f


# ---- JA4 ----------------------------------------------------------------------------------------


def _sha12(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12] if text else "000000000000"


def _hex4(cps: Sequence[str]) -> list[str]:
    return [c[2:] for c in cps if c != GREASE]


def ja4(f: dict[str, Any], *, protocol: str = "q") -> tuple[str, str]:
    """JA4 and JA4_r of a ClientHello given as client features (GREASE already normalised).

    ``a`` = protocol (``q`` QUIC), TLS version (highest non-GREASE supported_version, else the
    legacy version), ``d``/``i`` (SNI present or not), 2-digit cipher and extension counts
    (GREASE excluded), first and last character of the first ALPN value (``00`` if none);
    ``b`` = sha256 of the sorted cipher hex list, first 12 hex digits; ``c`` = sha256 of the
    sorted extension list without SNI (0000) and ALPN (0010), ``_``, the signature algorithms
    in their order; first 12 hex digits.
    """
    versions = [int(v, 16) for v in f.get("client.tls.supported_versions", []) if v != GREASE]
    top = max(versions) if versions else int(str(f.get("client.tls.legacy_version", "0x0303")), 16)
    version = _TLS_VERSIONS.get(top, "00")
    sni = "d" if f.get("client.tls.server_name") else "i"
    ciphers = _hex4(f.get("client.tls.cipher_suites", []))
    exts = _hex4(f.get("client.tls.extensions", []))
    alpn = (f.get("client.tls.alpn") or [""])[0]
    if not alpn:
        alpn_chars = "00"
    elif alpn[0].isascii() and alpn[0].isalnum() and alpn[-1].isascii() and alpn[-1].isalnum():
        alpn_chars = alpn[0] + alpn[-1]
    else:
        h = alpn.encode().hex()
        alpn_chars = h[0] + h[-1]
    a = f"{protocol}{version}{sni}{min(len(ciphers), 99):02d}{min(len(exts), 99):02d}{alpn_chars}"
    b_raw = ",".join(sorted(ciphers))
    c_exts = ",".join(sorted(e for e in exts if e not in ("0000", "0010")))
    sigs = ",".join(_hex4(f.get("client.tls.signature_algorithms", [])))
    c_raw = f"{c_exts}_{sigs}" if sigs else c_exts
    return f"{a}_{_sha12(b_raw)}_{_sha12(c_exts and c_raw)}", f"{a}_{b_raw}_{c_raw}"


# ---- the server side ----------------------------------------------------------------------------


def _server_hello(sh: Node) -> dict[str, Any]:
    exts = _extensions(sh)
    random = str(sh.get("tls.handshake.random") or "").replace(":", "")
    return {
        "server.tls.hello_retry_request": random == _HRR_RANDOM,
        "server.tls.handshake_len": _int(sh.get("tls.handshake.length")),
        "server.tls.session_id_len": _int(sh.get("tls.handshake.session_id_length") or 0),
        "server.tls.cipher_suite": codepoint(sh.get("tls.handshake.ciphersuite")),
        "server.tls.extensions": [codepoint(_ext_type(e)) for e in exts],
        "server.tls.key_share_group": next(
            (codepoint(g) for g in sh.find("tls.handshake.extensions_key_share_group")), None),
        "server.tls.key_share_size": next(
            (_int(n) for n in sh.find("tls.handshake.extensions_key_share_key_exchange_length")),
            None),
        "server.tls.supported_version": next(
            (codepoint(v) for v in sh.find("tls.handshake.extensions.supported_version")), None),
    }


def _encrypted_flight(hs: list[Node]) -> dict[str, Any]:
    """Features of EncryptedExtensions .. Finished (present only when tshark decrypted them)."""
    f: dict[str, Any] = {}
    by_type: dict[str, Node] = {}
    for h in hs:
        by_type.setdefault(str(h.get("tls.handshake.type")), h)
    ee = by_type.get("8")
    if ee is not None:
        exts = _extensions(ee)
        f["server.tls.encrypted_extensions"] = [codepoint(_ext_type(e)) for e in exts]
        f["server.tls.alpn"] = ee.find("tls.handshake.extensions_alpn_str")
        tp = next((e for e in exts if _ext_type(e) == 57), None)
        if tp is not None:
            f.update(transport_parameters(tp, "server.quic"))
    cert = by_type.get("11")
    if cert is not None:
        f["server.tls.certificate_len"] = _int(cert.get("tls.handshake.length"))
        f["server.tls.certificate_count"] = len(cert.find("tls.handshake.certificate_length"))
    comp = by_type.get("25")
    f["server.tls.certificate_compressed"] = comp is not None
    if comp is not None:
        f["server.tls.compressed_certificate_len"] = _int(comp.get("tls.handshake.length"))
    cv = by_type.get("15")
    if cv is not None:
        f["server.tls.certificate_verify_alg"] = codepoint(cv.get("tls.handshake.sig_hash_alg"))
        f["server.tls.certificate_verify_len"] = _int(cv.get("tls.handshake.length"))
    order = [str(h.get("tls.handshake.type")) for h in hs if str(h.get("tls.handshake.type")) != "2"]
    f["server.tls.decrypted"] = bool(order)
    f["server.tls.encrypted_messages"] = [int(t) for t in order]
    f["server.tls.encrypted_flight_len"] = sum(_int(h.get("tls.handshake.length")) + 4 for h in hs
                                               if str(h.get("tls.handshake.type")) != "2")
    return f


def server_features(flights: FirstFlights, trees: dict[int, Node]) -> dict[str, Any]:
    """The server's features of one flow: ServerHello, first-flight datagrams, decrypted flight.

    Args:
        flights: The flow's first flights.
        trees: Frame trees covering at least the server's first flight.
    """
    frames = [d.number for d in flights.server]
    f: dict[str, Any] = {
        "server.flight.bounded": flights.server_bounded,
        "server.flight.datagrams": len(flights.server),
        "server.flight.sizes": [d.size for d in flights.server],
        "server.flight.bytes": sum(d.size for d in flights.server),
        "server.flight.coalescing": [d.coalescing for d in flights.server],
        "server.flight.gaps_ms": [round((b.time - a.time) * 1000, 1)
                                  for a, b in itertools.pairwise(flights.server)],
        "server.flight.retry": any("retry" in d.packets for d in flights.server),
    }
    longs = [q for n in frames if n in trees for q in _quic_packets(trees[n])
             if q.get("quic.header_form") == "1" and q.get("quic.scil") is not None]
    f["server.quic.scid_len"] = _int(longs[0].get("quic.scil")) if longs else None
    f["server.quic.dcid_len"] = _int(longs[0].get("quic.dcil")) if longs else None
    hs = _handshakes(trees, frames)
    sh = next((h for h in hs if h.get("tls.handshake.type") == "2"), None)
    if sh is not None:
        f.update(_server_hello(sh))
    f.update(_encrypted_flight(hs))
    return f
