"""The censor: a flow table, residual blocks and the policies, on the caller's clock (sans-IO).

Theory of operation
-------------------
The emulator's I/O loop hands every packet to :meth:`Censor.to_server` (client -> server, the
inspected direction) or :meth:`Censor.to_client` with ``now``; each returns ``None`` (forward it)
or the reason to drop it. Nothing here reads a clock or does I/O.

* **Flows** are 4-tuples in client -> server orientation. A flow idle for ``flow_timeout_s``
  (60 s, the GFW's measured tracking time) is forgotten: its next packet is a first packet again.
* **Inspection:** while some policy has not decided about a flow, each client packet is opened
  (:func:`.initial.open_client_datagram`), fed to the flow's reassembly, and shown to the
  undecided policies in order. The first ``block`` wins: the flow is blocked in both directions
  from then on, and, with ``residual_s``, so is its 3-tuple (client IP, server IP, server port),
  whatever the client port. A ``probe`` decision queues a :class:`ProbeRequest` for the prober
  (:meth:`next_probe`); its answer (:meth:`probe_result`) blocks the flow and the 3-tuple when
  the server answered unlike the target.
* **Log:** every decision becomes one record (:meth:`pop_records`), written by the I/O layer to
  ``censor.jsonl``: time since the flow's first packet, flow, policy, action, reason, SNI, JA4.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .initial import HelloReader, open_client_datagram
from .policies import Action, Decision, FlowView, Policy
from .wire import FlowKey, Triple, UdpPacket, pull_udp_packet

__all__ = ["Censor", "ProbeRequest"]


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    """What the prober needs to probe a server like the client did.

    Attributes:
        flow: The client's flow.
        sni: The SNI the client sent.
        datagrams: The client's first datagrams (UDP payloads) holding its Initials, to replay.
        policy: The policy that asked.
        residual_s: 3-tuple block on a ``distinct`` verdict.
        requested_at: ``now`` when it was queued.
    """

    flow: FlowKey
    sni: str | None
    datagrams: tuple[bytes, ...]
    policy: str
    residual_s: float
    requested_at: float


@dataclass
class _Flow:
    key: FlowKey
    first_seen: float
    last_seen: float
    reader: HelloReader = field(default_factory=HelloReader)
    packets: int = 0
    undecided: list[Policy] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    blocked: Decision | None = None
    initial_datagrams: list[bytes] = field(default_factory=list)
    probing: bool = False


def _fast_key(pkt: bytes) -> tuple[FlowKey, Triple] | None:
    """(flow, 3-tuple) of an IPv4/UDP packet without copying its payload; None otherwise."""
    if len(pkt) < 28 or pkt[0] >> 4 != 4 or pkt[9] != 17:
        return None
    ihl = (pkt[0] & 0x0F) * 4
    if len(pkt) < ihl + 8:
        return None
    src = f"{pkt[12]}.{pkt[13]}.{pkt[14]}.{pkt[15]}"
    dst = f"{pkt[16]}.{pkt[17]}.{pkt[18]}.{pkt[19]}"
    sport, dport = struct.unpack_from("!HH", pkt, ihl)
    return (src, sport, dst, dport), (src, dst, dport)


class Censor:
    """An on-path censor over the client <-> server link.

    Args:
        policies: Policies in evaluation order.
        flow_timeout_s: Idle time after which a flow is forgotten.
        max_inspect_packets: Client packets per flow shown to undecided policies at most.
        origin: Time origin of the log's ``t`` field (the caller's clock).
    """

    def __init__(self, policies: Sequence[Policy], *, flow_timeout_s: float = 60.0,
                 max_inspect_packets: int = 16, origin: float = 0.0) -> None:
        self.policies = tuple(policies)
        self.flow_timeout_s = flow_timeout_s
        self.max_inspect_packets = max_inspect_packets
        self.reset(origin)

    def reset(self, origin: float) -> None:
        """Forget every flow, residual block, queued probe and counter (a re-arm)."""
        self.origin = origin
        self._flows: dict[FlowKey, _Flow] = {}
        self._residual: dict[Triple, tuple[float, str]] = {}
        self._probes: deque[ProbeRequest] = deque()
        self._records: list[dict[str, Any]] = []
        self.counters = {"inspected": 0, "dropped_to_server": 0, "dropped_to_client": 0,
                         "blocked_flows": 0, "probes": 0}
        self._last_sweep = origin

    # ------------------------------------------------------------------ packets

    def to_server(self, pkt: bytes, now: float) -> str | None:
        """Judge a client -> server packet; the drop reason, or None to forward it."""
        fast = _fast_key(pkt)
        if fast is None:
            udp = pull_udp_packet(pkt)
            if udp is None:
                return None
            key, triple = udp.flow, (udp.src, udp.dst, udp.dport)
        else:
            udp = None
            key, triple = fast
        self._sweep(now)
        res = self._residual.get(triple)
        if res is not None:
            if now < res[0]:
                self.counters["dropped_to_server"] += 1
                return f"residual block of {triple[0]} -> {triple[1]}:{triple[2]} ({res[1]})"
            del self._residual[triple]
        flow = self._flows.get(key)
        if flow is not None and now - flow.last_seen >= self.flow_timeout_s:
            del self._flows[key]
            flow = None
        if flow is None:
            flow = _Flow(key, now, now, undecided=list(self.policies))
            self._flows[key] = flow
        flow.last_seen = now
        if flow.blocked is not None:
            self.counters["dropped_to_server"] += 1
            return f"flow blocked ({flow.blocked.policy})"
        flow.packets += 1
        if not flow.undecided or flow.packets > self.max_inspect_packets:
            return None
        if udp is None:
            udp = pull_udp_packet(pkt)
            if udp is None:
                return None
        return self._inspect(flow, udp, now)

    def to_client(self, pkt: bytes, now: float) -> str | None:
        """A server -> client packet: dropped when its flow or 3-tuple is blocked."""
        if not self._residual and self.counters["blocked_flows"] == 0:
            return None
        fast = _fast_key(pkt)
        if fast is None:
            udp = pull_udp_packet(pkt)
            if udp is None:
                return None
            (src, sport, dst, dport) = udp.flow
        else:
            (src, sport, dst, dport) = fast[0]
        res = self._residual.get((dst, src, sport))
        if res is not None and now < res[0]:
            self.counters["dropped_to_client"] += 1
            return "residual block (reply direction)"
        flow = self._flows.get((dst, dport, src, sport))
        if flow is not None and flow.blocked is not None:
            self.counters["dropped_to_client"] += 1
            return f"flow blocked ({flow.blocked.policy}; reply direction)"
        return None

    def _inspect(self, flow: _Flow, udp: UdpPacket, now: float) -> str | None:
        """Show one client packet to the flow's undecided policies."""
        self.counters["inspected"] += 1
        read = open_client_datagram(udp.payload)
        if read.initials and len(flow.initial_datagrams) < 4:
            flow.initial_datagrams.append(udp.payload)
        flow.reader.feed(read)
        view = FlowView(flow.key, flow.packets, udp, read, flow.reader, flow.state, now)
        block: Decision | None = None
        still: list[Policy] = []
        for policy in flow.undecided:
            d = policy.judge(view)
            if d is None:
                still.append(policy)
                continue
            extra = {"replay_datagrams": len(flow.initial_datagrams)} if (
                d.action is Action.PROBE) else {}
            self._record(flow, d, now, **extra)
            if d.action is Action.BLOCK and block is None:
                block = d
            elif d.action is Action.PROBE and not flow.probing:
                flow.probing = True
                hello = flow.reader.hello()
                self._probes.append(ProbeRequest(flow.key, hello.sni if hello else None,
                                                 tuple(flow.initial_datagrams), d.policy,
                                                 d.residual_s, now))
                self.counters["probes"] += 1
        flow.undecided = still
        if block is None:
            return None
        self._block(flow, block, now)
        return f"blocked by {block.policy}" if block.drop_trigger else None

    def _block(self, flow: _Flow, d: Decision, now: float) -> None:
        flow.blocked = d
        flow.undecided = []
        self.counters["blocked_flows"] += 1
        if d.residual_s > 0:
            c, _, s, sp = flow.key
            self._residual[(c, s, sp)] = (now + d.residual_s, d.policy)

    def _sweep(self, now: float) -> None:
        """Forget idle flows and expired residual blocks (at most once a second)."""
        if now - self._last_sweep < 1.0:
            return
        self._last_sweep = now
        for k in [k for k, f in self._flows.items() if now - f.last_seen >= self.flow_timeout_s]:
            del self._flows[k]
        for t in [t for t, (until, _) in self._residual.items() if until <= now]:
            del self._residual[t]

    # ------------------------------------------------------------------ prober

    def next_probe(self) -> ProbeRequest | None:
        """The next probe the I/O layer should run, or None."""
        return self._probes.popleft() if self._probes else None

    def probe_result(self, req: ProbeRequest, verdict: str, detail: str, now: float,
                     shapes: Sequence[tuple[str, list[str], list[str]]] = ()) -> None:
        """Record the prober's verdict (``target-like`` or ``distinct``); distinct blocks.

        ``shapes`` (probe, the server's answer shapes, the target's) go into the record as
        ``probe_shapes``."""
        flow = self._flows.get(req.flow)
        if flow is None:  # expired meanwhile: track it again so its packets are dropped
            flow = _Flow(req.flow, req.requested_at, now)
            self._flows[req.flow] = flow
        action = Action.BLOCK if verdict == "distinct" else Action.PASS
        d = Decision(action, req.policy, f"probe verdict {verdict}: {detail}",
                     residual_s=req.residual_s if action is Action.BLOCK else 0.0)
        extra: dict[str, Any] = {"probe_verdict": verdict}
        if shapes:
            extra["probe_shapes"] = [{"probe": n, "server": sv, "target": t} for n, sv, t in shapes]
        self._record(flow, d, now, **extra)
        if action is Action.BLOCK and flow.blocked is None:
            self._block(flow, d, now)

    # ------------------------------------------------------------------ records

    def _record(self, flow: _Flow, d: Decision, now: float, **extra: Any) -> None:
        hello = flow.reader.hello()
        c, cp, s, sp = flow.key
        rec: dict[str, Any] = {
            "t": round(now - self.origin, 6), "flow_age_ms": round((now - flow.first_seen) * 1e3, 3),
            "flow": f"{c}:{cp}->{s}:{sp}", "client": c, "client_port": cp, "server": s,
            "server_port": sp, "packet": flow.packets, "policy": d.policy,
            "action": d.action.value, "reason": d.reason,
            "residual_s": d.residual_s if d.action is Action.BLOCK else 0.0,
            "sni": hello.sni if hello else None, "ja4": hello.ja4 if hello else None,
        }
        rec.update(extra)
        self._records.append(rec)

    def pop_records(self) -> list[dict[str, Any]]:
        """The decision records since the last call (for ``censor.jsonl``)."""
        out, self._records = self._records, []
        return out

    def stats(self) -> dict[str, Any]:
        """Counters, flows tracked and residual blocks in force."""
        return {**self.counters, "flows": len(self._flows), "residual_blocks": len(self._residual)}
