"""Measure the link a run built and compare it with the configured model.

Theory of operation
-------------------
Three probes, run between the client and server namespaces before the
workload (and before :meth:`Topology.rearm`, so they do not consume the
workload's seeded pattern or blackhole schedule):

* **RTT**: ``ping -c N -i 0.05`` client → server; the average is compared with
  ``delay_to_server + delay_to_client`` plus the serialization of an 84-byte
  ping at each rate.  Tolerance: ``max(rtt_abs_ms, rtt_rel × expected)`` plus
  the two jitters (FIFO jitter raises the mean).
* **Rate** (each direction that has a rate): ``iperf3 -u -b 1.2×rate -l 1200
  -w 4M -t probe_s -R`` run on the receiving side (the iperf3 server sends).  Expected receiver rate:
  ``min(offered × (1 − loss), rate) × 1200/1228`` (our rate counts IP bytes;
  iperf3 counts UDP payload).  Tolerance ``rate_rel``.
* **Loss** (each direction with random or Gilbert-Elliott loss): iperf3 UDP at
  half the rate (or ``loss_probe_mbit`` without a rate), ``lost_percent`` vs.
  ``expected_loss`` within a ``z``-sigma binomial bound, with the variance
  inflated by ``(1+ρ)/(1−ρ)``, ρ = 1−p−r, for bursty loss.

A probe that fails (iperf3 errors out: on a lossy link its UDP test's start exchange,
which it does not retransmit, can be lost) is tried again, up to :data:`PROBE_TRIES` times.

:func:`evaluate` is pure (unit-tested); :func:`measure_link` does the I/O.
The runner records :meth:`LinkCheck.to_dict` in manifest.json and fails the
run when ``ok`` is False.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from .model import Impairment, Link

__all__ = [
    "LinkCheck",
    "LinkCheckItem",
    "MeasuredLink",
    "Tolerances",
    "check_link",
    "evaluate",
    "measure_link",
    "parse_ping",
]

UDP_PAYLOAD = 1200
IP_OVERHEAD = 28
PROBE_PORT = 5299


class _Topo(Protocol):
    def exec_argv(self, host: str, argv: Sequence[str]) -> list[str]: ...
    def addr(self, host: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Tolerances:
    """Stated tolerances of the link check.

    Attributes:
        rtt_abs_ms: Absolute RTT tolerance (ms).
        rtt_rel: Relative RTT tolerance.
        rate_rel: Relative tolerance of the received rate.
        loss_z: Sigmas of the loss bound (3.29 ≈ 99.9 % two-sided).
        loss_abs: Extra absolute loss slack (covers socket drops).
    """

    rtt_abs_ms: float = 2.0
    rtt_rel: float = 0.05
    rate_rel: float = 0.05
    loss_z: float = 3.29
    loss_abs: float = 0.002


@dataclass(frozen=True, slots=True)
class MeasuredLink:
    """Raw probe results (None = not measured).

    ``rate_mbit`` / ``loss`` / ``packets`` / ``offered_mbit`` are keyed by direction.
    """

    rtt_ms: float | None = None
    ping_loss: float | None = None
    rate_mbit: dict[str, float] = field(default_factory=dict)
    offered_mbit: dict[str, float] = field(default_factory=dict)
    loss: dict[str, float] = field(default_factory=dict)
    packets: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LinkCheckItem:
    """One compared quantity."""

    name: str
    configured: float
    measured: float
    tolerance: float
    unit: str
    ok: bool


@dataclass(frozen=True, slots=True)
class LinkCheck:
    """Outcome of the link check (record ``to_dict()`` in the manifest)."""

    ok: bool
    items: tuple[LinkCheckItem, ...]
    tolerances: Tolerances

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"ok": self.ok, "items": [asdict(i) for i in self.items],
                "tolerances": asdict(self.tolerances)}

    def summary(self) -> str:
        """One line per item, failures marked."""
        return "\n".join(
            f"{'ok ' if i.ok else 'BAD'} {i.name}: measured {i.measured:.4g} {i.unit}, "
            f"configured {i.configured:.4g} ± {i.tolerance:.3g}" for i in self.items)


def _ser_ms(imp: Impairment, size: int) -> float:
    return size * 8 / (imp.rate_mbit * 1e6) * 1000 if imp.rate_mbit else 0.0


def expected_rtt_ms(link: Link, ping_size: int = 84) -> float:
    """Configured RTT of a ping: both delays plus its serialization at each rate."""
    return (link.base_rtt_ms + _ser_ms(link.to_server, ping_size)
            + _ser_ms(link.to_client, ping_size))


def _direction(link: Link, d: str) -> Impairment:
    return link.to_server if d == "to_server" else link.to_client


def loss_sigma(imp: Impairment, n: int) -> float:
    """Standard deviation of the observed loss fraction over ``n`` packets."""
    p = imp.expected_loss
    var = p * (1 - p) / max(n, 1)
    ge = imp.gilbert_elliott
    if ge is not None:
        rho = 1.0 - ge.p - ge.r
        if -1 < rho < 1:
            var *= (1 + rho) / (1 - rho)
    return math.sqrt(var)


def evaluate(link: Link, m: MeasuredLink, tol: Tolerances = Tolerances()) -> LinkCheck:
    """Compare measurements with the model (pure).

    Returns:
        A :class:`LinkCheck`; ``ok`` is the conjunction of its items.
    """
    items: list[LinkCheckItem] = []
    if m.rtt_ms is not None:
        exp = expected_rtt_ms(link)
        t = max(tol.rtt_abs_ms, tol.rtt_rel * exp) + link.to_server.jitter_ms \
            + link.to_client.jitter_ms
        items.append(LinkCheckItem("rtt", exp, m.rtt_ms, t, "ms", abs(m.rtt_ms - exp) <= t))
    for d, got in m.rate_mbit.items():
        imp = _direction(link, d)
        if imp.rate_mbit is None:
            continue
        offered = m.offered_mbit.get(d, imp.rate_mbit * 1.2)
        exp = min(offered * (1 - imp.expected_loss), imp.rate_mbit) \
            * UDP_PAYLOAD / (UDP_PAYLOAD + IP_OVERHEAD)
        t = tol.rate_rel * exp
        items.append(LinkCheckItem(f"rate.{d}", exp, got, t, "Mbit/s", abs(got - exp) <= t))
    for d, got in m.loss.items():
        imp = _direction(link, d)
        exp = imp.expected_loss
        t = tol.loss_z * loss_sigma(imp, m.packets.get(d, 0)) + tol.loss_abs
        items.append(LinkCheckItem(f"loss.{d}", exp, got, t, "fraction", abs(got - exp) <= t))
    return LinkCheck(ok=all(i.ok for i in items), items=tuple(items), tolerances=tol)


_PING_RE = re.compile(r"= [\d.]+/([\d.]+)/[\d.]+/[\d.]+ ms")
_PING_LOSS_RE = re.compile(r"(\d+) packets transmitted, (\d+) received")


def parse_ping(text: str) -> tuple[float | None, float | None]:
    """(average RTT in ms, loss fraction) from ``ping -q`` output."""
    m = _PING_RE.search(text)
    lm = _PING_LOSS_RE.search(text)
    loss = None
    if lm and int(lm.group(1)):
        loss = 1 - int(lm.group(2)) / int(lm.group(1))
    return (float(m.group(1)) if m else None), loss


#: Tries of one iperf3 UDP probe. iperf3 3.12 starts a UDP test with a datagram exchange it
#: does not retransmit; at 5 % loss each way (``loss-sweep``) a probe failed with "unable to
#: read from stream socket" in 3 of 7 link-check attempts (4 probes each): the probe's
#: failure, not the link's.
PROBE_TRIES = 3


def _iperf_udp(topo: _Topo, direction: str, mbit: float, seconds: float,
               port: int, tries: int = PROBE_TRIES) -> dict[str, Any]:
    """One UDP probe (``sum_received`` of iperf3's JSON), tried up to ``tries`` times."""
    for _ in range(tries - 1):
        try:
            return _iperf_udp_once(topo, direction, mbit, seconds, port)
        except RuntimeError:
            continue
    return _iperf_udp_once(topo, direction, mbit, seconds, port)


def _iperf_udp_once(topo: _Topo, direction: str, mbit: float, seconds: float,
                    port: int) -> dict[str, Any]:
    # The receiver is always the iperf3 *client* (-R; the iperf3 server runs on the sending
    # side): an iperf3 UDP server starts its clock about 1.5 RTT before the first datagram
    # arrives, which halved the measured rate of a 1.5 s RTT link (long-rtt).
    sender, receiver = ("server", "client") if direction == "to_client" else ("client", "server")
    server = subprocess.Popen(topo.exec_argv(sender, ["iperf3", "-s", "-1", "-B",
                                                      topo.addr(sender), "-p", str(port)]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        time.sleep(0.2)
        argv = ["iperf3", "-c", topo.addr(sender), "-p", str(port), "-u", "-b", f"{mbit:.6g}M",
                "-l", str(UDP_PAYLOAD), "-w", "4M", "-t", f"{seconds:g}", "-J", "-R"]
        r = subprocess.run(topo.exec_argv(receiver, argv), capture_output=True, text=True,
                           timeout=seconds + 20, check=False)
        j = json.loads(r.stdout) if r.stdout.strip() else {}
        if "error" in j or "end" not in j:
            raise RuntimeError(f"iperf3 probe failed: {j.get('error', r.stderr.strip())}")
        return j["end"]["sum_received"]
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()


def measure_link(topo: _Topo, link: Link, *, ping_count: int = 20, probe_s: float = 2.0,
                 directions: Sequence[str] = ("to_server", "to_client"),
                 loss_probe_mbit: float = 10.0, port: int = PROBE_PORT) -> MeasuredLink:
    """Run the probes (see the module docstring) and return raw results."""
    r = subprocess.run(topo.exec_argv("client", ["ping", "-c", str(ping_count), "-i", "0.05",
                                                 "-W", "2", "-q", topo.addr("server")]),
                       capture_output=True, text=True, timeout=ping_count * 0.05 + 15, check=False)
    rtt, ping_loss = parse_ping(r.stdout)
    m = MeasuredLink(rtt_ms=rtt, ping_loss=ping_loss)
    for d in directions:
        imp = _direction(link, d)
        if imp.rate_mbit is not None:
            offered = 1.2 * imp.rate_mbit
            s = _iperf_udp(topo, d, offered, probe_s, port)
            m.rate_mbit[d] = s["bits_per_second"] / 1e6
            m.offered_mbit[d] = offered
        if imp.expected_loss > 0:
            mbit = imp.rate_mbit * 0.5 if imp.rate_mbit else loss_probe_mbit
            s = _iperf_udp(topo, d, mbit, probe_s, port)
            m.loss[d] = s["lost_percent"] / 100.0
            m.packets[d] = int(s["packets"])
    return m


def check_link(topo: _Topo, link: Link, tol: Tolerances = Tolerances(),
               **kw: Any) -> tuple[LinkCheck, MeasuredLink]:
    """Measure and evaluate; returns (verdict, raw measurements)."""
    m = measure_link(topo, link, **kw)
    return evaluate(link, m, tol), m
