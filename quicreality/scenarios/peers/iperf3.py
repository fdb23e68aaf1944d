"""iperf3 (Debian 3.12) argv builders and ``-J`` parsing, for TCP/UDP baselines beside QUIC.

Server: ``iperf3 -s -B HOST -p PORT -1 -J`` (one test, then exit).
Client: ``iperf3 -c HOST -p PORT -t SECS -J [-R] [-C CC] [-u -b RATE -l LEN] [-w WINDOW]``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import paths
from .base import Command


@dataclass(frozen=True, slots=True)
class IperfRequest:
    """One iperf3 test. ``reverse`` makes the server send (the ``-R`` "download" direction)."""

    host: str
    port: int
    seconds: float = 3.0
    reverse: bool = False
    udp: bool = False
    rate: str | None = None  #: ``-b``: e.g. "50M"; "0" = unlimited (UDP defaults to 1 Mbit/s)
    length: int | None = None  #: ``-l``: UDP datagram / TCP write size
    congestion: str | None = None  #: ``-C``: TCP congestion control, e.g. "cubic", "bbr"
    window: str | None = None  #: ``-w``: socket buffer, e.g. "4M"
    bind: str | None = None  #: ``-B`` on the client


def server(host: str, port: int, *, one_off: bool = True) -> Command:
    """iperf3 server bound to ``host:port`` (``-1``: exit after one test)."""
    argv = [str(paths.iperf3()), "-s", "-B", host, "-p", str(port), "-J"]
    if one_off:
        argv.append("-1")
    return Command(argv=tuple(argv))


def client(req: IperfRequest) -> Command:
    """iperf3 client with JSON output."""
    argv = [str(paths.iperf3()), "-c", req.host, "-p", str(req.port), "-t", f"{req.seconds:g}", "-J"]
    if req.reverse:
        argv.append("-R")
    if req.udp:
        argv.append("-u")
    if req.rate is not None:
        argv += ["-b", req.rate]
    if req.length is not None:
        argv += ["-l", str(req.length)]
    if req.congestion:
        argv += ["-C", req.congestion]
    if req.window:
        argv += ["-w", req.window]
    if req.bind:
        argv += ["-B", req.bind]
    return Command(argv=tuple(argv))


@dataclass(frozen=True, slots=True)
class IperfSummary:
    """The end-of-test numbers of ``iperf3 -J`` (receiver side unless said otherwise)."""

    protocol: str
    seconds: float
    bits_per_second: float  #: received goodput
    sender_bits_per_second: float | None = None
    bytes: int | None = None
    retransmits: int | None = None  #: TCP sender
    lost_percent: float | None = None  #: UDP
    jitter_ms: float | None = None  #: UDP
    error: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def parse(stdout: str) -> IperfSummary:
    """Summarise an ``iperf3 -J`` document (client or server side)."""
    doc = json.loads(stdout)
    err = doc.get("error")
    start = doc.get("start", {})
    proto = start.get("test_start", {}).get("protocol", "TCP")
    end = doc.get("end", {})
    if proto == "UDP":
        s = end.get("sum_received") or end.get("sum") or {}
        sent = end.get("sum_sent") or end.get("sum") or {}
        return IperfSummary(
            protocol="UDP", seconds=float(s.get("seconds", 0.0)),
            bits_per_second=float(s.get("bits_per_second", 0.0)),
            sender_bits_per_second=float(sent.get("bits_per_second", 0.0)) if sent else None,
            bytes=int(s.get("bytes", 0)) if s else None,
            lost_percent=float(s["lost_percent"]) if "lost_percent" in s else None,
            jitter_ms=float(s["jitter_ms"]) if "jitter_ms" in s else None,
            error=err, raw=doc)
    recv = end.get("sum_received", {})
    sent = end.get("sum_sent", {})
    return IperfSummary(
        protocol="TCP", seconds=float(recv.get("seconds", 0.0)),
        bits_per_second=float(recv.get("bits_per_second", 0.0)),
        sender_bits_per_second=float(sent["bits_per_second"]) if "bits_per_second" in sent else None,
        bytes=int(recv["bytes"]) if "bytes" in recv else None,
        retransmits=int(sent["retransmits"]) if "retransmits" in sent else None,
        error=err, raw=doc)
