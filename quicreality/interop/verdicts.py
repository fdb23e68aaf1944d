"""Verdicts from the wire, as QIR's ``testcases_quic.py`` checks them.

Every check is a pure function of a :class:`Evidence` (the server-side and the client-side
capture of the link, decrypted with the merged key logs, plus the file comparison) and returns
a :class:`Verdict` value: ``succeeded``, ``failed`` with the reason the check found, or
``unsupported`` (an endpoint exited 127: decided by the runner, never here).

Handshakes are counted like QIR: distinct source connection IDs of the server's Initial
packets in the server-side capture (RFC 9000 §17.2.2; a Retry's SCID is not an Initial).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..tls.constants import HandshakeType
from ..tls.hkdf import CipherSuite
from ..wire.error_codes import QuicErrorCode
from .trace import V1, V2, Trace

__all__ = ["CHECKS", "Evidence", "FileCheck", "Verdict", "judge"]

CHACHA20_SUITE = int(CipherSuite.CHACHA20_POLY1305_SHA256)
SERVER_HELLO, CERTIFICATE = int(HandshakeType.SERVER_HELLO), int(HandshakeType.CERTIFICATE)
#: QIR's minimum server CRYPTO data for amplificationlimit (its 9-certificate chain).
MIN_AMPLIFICATION_CRYPTO = 7500
#: Characters of a CONNECTION_CLOSE reason phrase quoted in a verdict.
MAX_REASON = 100
#: ECN codepoints (RFC 3168 §5).
ECT1, ECT0, CE = 1, 2, 3


@dataclass(frozen=True, slots=True)
class Verdict:
    """A case's result: ``succeeded`` / ``failed`` / ``unsupported`` and why."""

    result: str
    reason: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def letter(self) -> str:
        """QIR's symbol (✓, ✕, ?)."""
        return {"succeeded": "✓", "failed": "✕", "unsupported": "?"}.get(self.result, "-")


def ok(reason: str = "", **metrics: float) -> Verdict:
    """A succeeded verdict."""
    return Verdict("succeeded", reason, metrics)


def fail(reason: str, **metrics: float) -> Verdict:
    """A failed verdict."""
    return Verdict("failed", reason, metrics)


@dataclass(frozen=True, slots=True)
class FileCheck:
    """Downloaded files against the served ones: ``problem`` is "" when all match."""

    expected: int
    matched: int
    problem: str = ""


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a check looks at."""

    server: Trace  #: capture on the server's side of the link
    client: Trace  #: capture on the client's side
    files: FileCheck
    keys: int = 0  #: key-log lines merged
    expect_handshakes: int = 1
    file_bytes: int = 0
    filename_bytes: int = 0  #: zerortt: bytes of the requested paths


def handshakes(t: Trace) -> int:
    """QIR's count: distinct SCIDs of server Initials."""
    return len({p.scid for p in t.packets("initial", from_server=True)})


def server_versions(t: Trace) -> set[int]:
    """Versions of the server's Initials."""
    return {p.version for p in t.packets("initial", from_server=True) if p.version is not None}


def handshake_starts(t: Trace) -> list[float]:
    """Capture time of each server handshake's first Initial, in order (one per SCID)."""
    seen: dict[str, float] = {}
    for d in t.from_server():
        for p in d.packets:
            if p.kind == "initial" and p.scid not in seen:
                seen[p.scid] = d.time
    return list(seen.values())


def _error_name(code: int) -> str:
    """RFC 9000 §20.1's name of a transport error code (CRYPTO_ERROR: RFC 9001 §4.8)."""
    if 0x100 <= code <= 0x1FF:
        return f"CRYPTO_ERROR, TLS alert {code - 0x100}"
    try:
        return QuicErrorCode(code).name
    except ValueError:
        return "unknown"


def close_before(t: Trace, when: float) -> str:
    """The last CONNECTION_CLOSE (RFC 9000 §19.19) in ``t`` sent before ``when``, described:
    who sent it, transport or application, the code and the reason phrase; "" if none."""
    closes = [d for d in t.datagrams if d.close_code is not None and d.time < when]
    if not closes:
        return ""
    d = closes[-1]
    side = "server" if d.src_ip == t.server_ip else "client"
    code = d.close_code or 0
    if d.close_app:
        what = f"an application CONNECTION_CLOSE {code:#04x}"
    else:
        what = f"a transport CONNECTION_CLOSE {code:#04x} ({_error_name(code)})"
    reason = d.close_reason if len(d.close_reason) <= MAX_REASON else \
        d.close_reason[:MAX_REASON] + "..."
    return f"the {side} sent {what}" + (f' "{reason}"' if reason else "") + f" at {d.time:.3f} s"


def _count(t: Trace, want: int) -> Verdict | None:
    """QIR's handshake count; a surplus handshake is explained by the CONNECTION_CLOSE before it
    in the same (server-side) capture, when there is one."""
    starts = handshake_starts(t)
    got = len(starts)
    if got == want:
        return None
    msg = f"expected {want} handshake(s), the server sent Initials with {got} SCID(s)"
    if got > want:
        close = close_before(t, starts[want])
        msg += (f"; before handshake {want + 1} ({starts[want]:.3f} s) " +
                (close or "no CONNECTION_CLOSE in the server-side capture"))
    return fail(msg)


def _base(ev: Evidence, n: int | None = None, version: int = V1) -> Verdict | None:
    """Handshake count, one version, the files; None when all are fine."""
    want = ev.expect_handshakes if n is None else n
    bad = _count(ev.server, want)
    if bad:
        return bad
    versions = server_versions(ev.server)
    if versions != {version}:
        return fail(f"expected version {version:#010x} only, server Initials used "
                    f"{sorted(hex(v) for v in versions)}")
    if ev.files.problem:
        return fail(ev.files.problem)
    return None


def check_handshake(ev: Evidence) -> Verdict:
    """handshake, transfer, http3, longrtt, loss/corruption, blackhole."""
    return _base(ev) or ok(f"1 handshake, {ev.files.matched} file(s) match")


def check_longrtt(ev: Evidence) -> Verdict:
    """longrtt: QIR also wants the client to have retransmitted its first Initial."""
    bad = _base(ev)
    if bad:
        return bad
    firsts = [p for p in ev.client.packets("initial", from_server=False)]
    dcid0 = firsts[0].dcid if firsts else ""
    n = sum(1 for p in firsts if p.dcid == dcid0)
    if n < 2:
        return fail("the client never retransmitted its first Initial (RTT 1.5 s)")
    return ok(f"1 handshake, first Initial sent {n} times")


def check_multiconnect(ev: Evidence) -> Verdict:
    """handshakeloss, handshakecorruption: one handshake per file."""
    return _base(ev, n=ev.files.expected) or ok(f"{ev.files.expected} handshakes, files match")


def check_chacha20(ev: Evidence) -> Verdict:
    """The ServerHello selected TLS_CHACHA20_POLY1305_SHA256."""
    bad = _base(ev)
    if bad:
        return bad
    suites = {s for d in ev.client.from_server() if SERVER_HELLO in d.handshake_types
              for s in d.ciphersuites}
    if suites != {CHACHA20_SUITE}:
        return fail(f"ServerHello cipher suite(s) {sorted(hex(s) for s in suites)}, "
                    f"expected {CHACHA20_SUITE:#06x}")
    return ok("ChaCha20-Poly1305 negotiated")


def check_multiplexing(ev: Evidence) -> Verdict:
    """The server's initial_max_streams_bidi is at most 1000 (so it must raise the limit)."""
    bad = _base(ev)
    if bad:
        return bad
    limits = [d.max_streams_bidi for d in ev.client.from_server() if d.max_streams_bidi is not None]
    if not limits:
        return fail("could not read the server's initial_max_streams_bidi (keys missing?)")
    if limits[0] > 1000:
        return fail(f"server's initial_max_streams_bidi is {limits[0]} > 1000")
    return ok(f"{ev.files.matched} files, server stream limit {limits[0]}")


def check_retry(ev: Evidence) -> Verdict:
    """A Retry was sent and a later client Initial carries its token."""
    bad = _base(ev)
    if bad:
        return bad
    tokens = {p.token for p in ev.client.packets("retry", from_server=True) if p.token}
    if not tokens:
        return fail("no Retry packet from the server")
    used = [p for p in ev.client.packets("initial", from_server=False) if p.token in tokens]
    if not used:
        return fail("no client Initial carries the Retry token")
    return ok("Retry sent, its token used")


def _cert_scids(t: Trace) -> list[tuple[str, bool]]:
    """(SCID, has Certificate) per server handshake in order of first appearance."""
    order: dict[str, bool] = {}
    for d in t.from_server():
        scids = [p.scid for p in d.packets if p.kind in ("initial", "handshake") and p.scid]
        for s in scids:
            order.setdefault(s, False)
        if scids and CERTIFICATE in d.handshake_types:
            order[scids[-1]] = True
    return list(order.items())


def check_resumption(ev: Evidence) -> Verdict:
    """Two handshakes; the second has no Certificate message (a PSK handshake)."""
    bad = _base(ev, n=2)
    if bad:
        return bad
    hs = _cert_scids(ev.client)
    if len(hs) < 2:
        return fail(f"expected 2 server handshakes in the client capture, saw {len(hs)}")
    if not hs[0][1]:
        return fail("no Certificate in the first handshake (keys missing?)")
    if hs[-1][1]:
        return fail("the server sent a Certificate in the second handshake (no resumption)")
    return ok("second handshake resumed (no Certificate)")


def check_zerortt(ev: Evidence) -> Verdict:
    """Two handshakes, 0-RTT data sent, little 1-RTT data from the client."""
    bad = _base(ev, n=2)
    if bad:
        return bad
    zero = sum(p.length for p in ev.client.packets("0rtt", from_server=False))
    one = sum(d.size for d in ev.client.from_client() if d.kinds() == ("1rtt",))
    if zero == 0:
        return fail("the client sent no 0-RTT data")
    if ev.filename_bytes and one > 0.5 * ev.filename_bytes:
        return fail(f"the client sent {one} B in 1-RTT packets (> half the {ev.filename_bytes} "
                    f"B of requests): the requests were not 0-RTT", zero_rtt_bytes=zero)
    return ok(f"0-RTT {zero} B, client 1-RTT {one} B", zero_rtt_bytes=zero, one_rtt_bytes=one)


def check_keyupdate(ev: Evidence) -> Verdict:
    """Both sides sent 1-RTT packets with key phase 1."""
    bad = _base(ev)
    if bad:
        return bad
    c = sum(1 for p in ev.client.packets("1rtt", from_server=False) if p.key_phase == 1)
    s = sum(1 for p in ev.server.packets("1rtt", from_server=True) if p.key_phase == 1)
    if c * s == 0:
        return fail(f"key phase 1 packets: client {c}, server {s} (both must be > 0)")
    return ok(f"key phase 1: client {c}, server {s} packets")


def _ecn(t: Trace, from_server: bool) -> tuple[dict[int, int], bool]:
    counts = {0: 0, ECT1: 0, ECT0: 0, CE: 0}
    ack = False
    for d in (t.from_server() if from_server else t.from_client()):
        counts[d.ecn or 0] = counts.get(d.ecn or 0, 0) + 1
        ack = ack or d.ack_ecn
    return counts, ack


def check_ecn(ev: Evidence) -> Verdict:
    """QIR's check: each side marked packets ECT and none CE (unmarked packets, e.g. PMTU
    probes, are allowed), and each side sent ACK_ECN counts."""
    bad = _base(ev)
    if bad:
        return bad
    problems, seen = [], []
    for side, trace, from_server in (("client", ev.client, False), ("server", ev.server, True)):
        counts, ack = _ecn(trace, from_server)
        if counts[ECT0] + counts[ECT1] == 0:
            problems.append(f"{side} marked no packet ECT")
        elif counts[CE]:
            problems.append(f"{side} sent {counts[CE]} CE-marked packets")
        if not ack:
            problems.append(f"{side} sent no ACK_ECN counts")
        seen.append(f"{side} {counts[ECT0]} ECT(0) {counts[ECT1]} ECT(1) {counts[0]} not-ECT")
    if problems:
        return fail("; ".join(problems))
    return ok("ECT and ACK_ECN both ways: " + ", ".join(seen))


def check_v2(ev: Evidence) -> Verdict:
    """QUIC v2 by compatible version negotiation (RFC 9368), as QIR's ``TestCaseV2`` checks it:
    the client's Initials include v1, the server's include v2 (a v1 Initial before the server's
    CRYPTO data, e.g. an ACK while the ClientHello is incomplete, is allowed), and every
    Handshake packet of both sides is v2; one handshake, the files."""
    bad = _count(ev.server, ev.expect_handshakes)
    if bad:
        return bad
    client_initials = {p.version for p in ev.client.packets("initial", from_server=False)}
    if V1 not in client_initials:
        return fail(f"the client's Initials were not v1: {sorted(hex(v or 0) for v in client_initials)}")
    if V2 not in server_versions(ev.server):
        return fail(f"the server's Initials never used v2: "
                    f"{sorted(hex(v) for v in server_versions(ev.server))}")
    for side, trace, from_server in (("client", ev.client, False), ("server", ev.server, True)):
        hs = {p.version for p in trace.packets("handshake", from_server=from_server)}
        if hs != {V2}:
            return fail(f"the {side}'s Handshake packets used {sorted(hex(v or 0) for v in hs)}, "
                        f"not v2 only")
    if ev.files.problem:
        return fail(ev.files.problem)
    return ok("client started in v1, server selected v2")


def check_versionnegotiation(ev: Evidence) -> Verdict:
    """A Version Negotiation packet echoing the client's DCID as its SCID."""
    first = ev.client.packets("initial", from_server=False)
    if not first:
        return fail("no client Initial")
    dcid = first[0].dcid
    if any(p.scid == dcid for p in ev.client.packets("vn", from_server=True)):
        return ok("Version Negotiation elicited")
    return fail("no Version Negotiation packet with the client's DCID as SCID")


def check_ipv6(ev: Evidence) -> Verdict:
    """The transfer ran over IPv6."""
    bad = _base(ev)
    if bad:
        return bad
    if not ev.server.datagrams or any(":" not in d.src_ip for d in ev.server.datagrams):
        return fail("not every QUIC datagram was IPv6")
    return ok("transfer over IPv6")


def _paths_and_challenges(ev: Evidence) -> Verdict:
    """QIR's rebinding check: every new path the server sends on starts with PATH_CHALLENGE."""
    paths: list[str] = []
    for d in ev.server.from_server():
        dst = f"{d.dst_ip}:{d.dst_port}"
        if not paths or dst not in paths:
            if paths and not d.path_challenge:
                return fail(f"first server packet to new path {dst} has no PATH_CHALLENGE")
            paths.append(dst)
    if len(paths) <= 1:
        return fail("the server saw a single path")
    if not any(d.path_response for d in ev.client.from_client()):
        return fail("no PATH_RESPONSE from the client")
    return ok(f"{len(paths)} paths, each validated")


def check_rebind(ev: Evidence) -> Verdict:
    """rebind-port / rebind-addr."""
    return _base(ev) or _paths_and_challenges(ev)


def check_connectionmigration(ev: Evidence) -> Verdict:
    """The client moved to another path (the preferred address) and validated it."""
    bad = _base(ev)
    if bad:
        return bad
    tuples = {(d.src, d.dst_port) for d in ev.client.from_client()}
    if len(tuples) < 2:
        return fail("the client used a single path")
    if not any(d.path_challenge for d in ev.client.from_client()):
        return fail("the client sent no PATH_CHALLENGE")
    return ok(f"client used {len(tuples)} paths")


def check_amplificationlimit(ev: Evidence) -> Verdict:
    """QIR's check: a large server flight (>= 7500 B of CRYPTO), and until the client's first
    Handshake packet no server datagram beyond 3x (4x tolerated) what the client sent
    (RFC 9000 §8.1)."""
    bad = _base(ev)
    if bad:
        return bad
    crypto = max((d.crypto_end for d in ev.server.from_server()), default=0)
    if crypto < MIN_AMPLIFICATION_CRYPTO:
        return fail(f"server sent only {crypto} B of CRYPTO data (< {MIN_AMPLIFICATION_CRYPTO}): "
                    f"not the large certificate?")
    allowed = tolerance = 0
    for d in ev.server.datagrams:
        kinds = d.kinds()
        if d.src_ip != ev.server.server_ip:
            if "handshake" in kinds:
                return ok(f"server flight of {crypto} B CRYPTO within 3x until address validation")
            if "initial" in kinds:
                allowed += 3 * d.size
                tolerance += 4 * d.size
            continue
        if "vn" in kinds:
            return fail("unexpected Version Negotiation")
        if d.size >= tolerance:
            return fail(f"server sent a {d.size} B datagram with {tolerance} B of 4x budget left")
        allowed -= d.size
        tolerance -= d.size
    return fail("the client never sent a Handshake packet")


def goodput(ev: Evidence) -> Verdict:
    """goodput, crosstraffic: files, then kbit/s from the first client packet to the last
    server 1-RTT datagram in the client-side capture."""
    bad = _base(ev)
    if bad:
        return bad
    c = ev.client.from_client()
    s = [d for d in ev.client.from_server() if "1rtt" in d.kinds()]
    if not c or not s:
        return fail("no packets to time")
    secs = s[-1].time - c[0].time
    kbps = ev.file_bytes * 8 / secs / 1000 if secs > 0 else 0.0
    return ok(f"{kbps:.0f} kbps", goodput_kbps=kbps, seconds=secs)


CHECKS: Mapping[str, Callable[[Evidence], Verdict]] = {
    "handshake": check_handshake, "longrtt": check_longrtt, "multiconnect": check_multiconnect,
    "chacha20": check_chacha20, "multiplexing": check_multiplexing, "retry": check_retry,
    "resumption": check_resumption, "zerortt": check_zerortt, "keyupdate": check_keyupdate,
    "ecn": check_ecn, "v2": check_v2, "versionnegotiation": check_versionnegotiation,
    "ipv6": check_ipv6, "rebind-port": check_rebind, "rebind-addr": check_rebind,
    "connectionmigration": check_connectionmigration,
    "amplificationlimit": check_amplificationlimit, "goodput": goodput,
}


def judge(check: str, ev: Evidence) -> Verdict:
    """Run the check called ``check``; a keyless capture cannot be judged (failed, said so)."""
    if ev.keys == 0 and check != "versionnegotiation":
        return fail("no key log from either endpoint: the capture cannot be decrypted")
    return CHECKS[check](ev)


def to_json(v: Verdict) -> dict[str, Any]:
    """Plain-JSON form."""
    return {"result": v.result, "reason": v.reason, "metrics": dict(v.metrics)}
