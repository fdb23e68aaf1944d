"""The ``iperf3`` workload: TCP directly between the namespaces (and the iperf3 verdict that
``relay-iperf3`` shares).

iperf3's test is time-bounded, so its goodput is iperf3's receiver rate over its own test
interval (what the reference figures use); the receiver-side capture must show at least the
bytes iperf3 claims, and its own estimate is kept as ``goodput_wire``.  Captures keep 128 bytes
per packet (headers; the payload is iperf3 filler).  Cached TCP metrics are flushed in both
namespaces first, so a repetition does not start from what the previous one learned.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from ..peers import iperf3 as iperf3_peer
from ..peers.base import Command
from ..peers.process import PeerFailed, PeerProcess
from ..results import Check
from ..topology import ADDRESSES
from ..wire import tcp_wire
from .context import (
    IPERF_PORT,
    TCP_SNAPLEN,
    Metric,
    RepContext,
    RepOutcome,
    WorkloadSpec,
    tail,
)
from .measures import link_loss_metrics

__all__ = ["SPEC", "flush_tcp_metrics", "iperf3_metrics", "iperf_outcome", "run_iperf3"]


def iperf3_metrics(doc: dict[str, Any]) -> tuple[list[Metric], dict[str, Any]]:
    """Goodput, retransmits and RTT that ``iperf3 -J`` reports."""
    s = iperf3_peer.parse(json.dumps(doc))
    m: list[Metric] = [("goodput_reported", s.bits_per_second / 1e6, "Mbit/s", "peer")]
    if s.retransmits is not None:
        m.append(("retransmits", float(s.retransmits), "packets", "peer"))
    end = doc.get("end", {})
    sender_end = end
    if not any(st.get("sender", {}).get("sender") for st in end.get("streams", [])):
        # -R: the server sent; --get-server-output carries its view (RTT is the sender's)
        sender_end = doc.get("server_output_json", {}).get("end", {})
    rtts = [st.get("sender", {}).get("mean_rtt") for st in sender_end.get("streams", [])]
    rtts = [r for r in rtts if isinstance(r, (int, float)) and r > 0]
    if rtts:
        m.append(("rtt_mean_ms", sum(rtts) / len(rtts) / 1000.0, "ms", "peer"))
    cc = end.get("sender_tcp_congestion"), end.get("receiver_tcp_congestion")
    return m, {"iperf3": {"bits_per_second": s.bits_per_second, "bytes": s.bytes,
                          "seconds": s.seconds, "retransmits": s.retransmits, "error": s.error,
                          "sender_tcp_congestion": cc[0], "receiver_tcp_congestion": cc[1]}}


def flush_tcp_metrics(ctx: RepContext) -> None:
    """Forget cached TCP metrics (ssthresh, RTT per destination) in the client and server
    namespaces, so a repetition does not start from what the previous one learned."""
    for host in ("client", "server"):
        argv = ["ip", "tcp_metrics", "flush", "all"]
        r = ctx.topo.run(host, argv, timeout=10)
        ctx.commands.append({"name": f"tcp-metrics-flush-{host}", "host": host, "argv": argv,
                             "exit": r.returncode})


def run_iperf3(ctx: RepContext) -> RepOutcome:
    """iperf3 TCP directly between the client and the server namespace."""
    w = ctx.workload
    assert w.seconds is not None
    srv_addr = ADDRESSES["server"]
    flush_tcp_metrics(ctx)
    ctx.start_captures(snaplen=TCP_SNAPLEN)
    server = ctx.start(iperf3_peer.server(srv_addr, IPERF_PORT), "server", "server")
    server.wait_tcp_ready(IPERF_PORT, timeout=10)
    req = iperf3_peer.IperfRequest(host=srv_addr, port=IPERF_PORT, seconds=w.seconds,
                                   reverse=w.reverse, congestion=w.congestion)
    cmd = iperf3_peer.client(req)
    client = ctx.start(Command(argv=(*cmd.argv, "--get-server-output")), "client", "client")
    try:
        rc, secs = ctx.wait(client, w.effective_timeout_s())
    except PeerFailed as e:
        ctx.close()
        return RepOutcome(Check(False, str(e).splitlines()[0],
                                {"client_stderr_tail": tail(client.stderr_path)}))
    with contextlib.suppress(PeerFailed):
        ctx.wait(server, 5)
    server.stop()
    ctx.stop_captures()
    return iperf_outcome(ctx, client, rc, secs, sender="server" if w.reverse else "client")


def iperf_outcome(ctx: RepContext, client: PeerProcess, rc: int, secs: float, *,
                   sender: str, wire: bool = True) -> RepOutcome:
    """Check and metrics of a finished iperf3 client (direct or through the relay)."""
    w = ctx.workload
    details: dict[str, Any] = {"client_exit": rc, "client_secs": round(secs, 3),
                               "sender": sender}
    metrics: list[Metric] = [("client_elapsed", secs, "s", "runner")]
    try:
        doc = json.loads(client.stdout())
    except json.JSONDecodeError:
        doc = {}
    problems = []
    if doc:
        m, d = iperf3_metrics(doc)
        metrics += m
        details.update(d)
        if doc.get("error"):
            problems.append(f"iperf3: {doc['error']}")
        got_cc = d["iperf3"]["sender_tcp_congestion"]
        if w.congestion and w.kind == "iperf3" and got_cc != w.congestion:
            problems.append(f"sender used {got_cc!r}, not {w.congestion!r}")
        if not d["iperf3"]["bytes"]:
            problems.append("no bytes received")
    else:
        problems.append(f"no iperf3 JSON on stdout: {tail(client.stderr_path, 3)}")
    if rc != 0:
        problems.append(f"iperf3 client exit {rc}")
    if wire:
        recv_side = "client" if sender == "server" else "server"
        tw = tcp_wire(str(ctx.dir / f"{recv_side}.pcap"), sender_addr=ADDRESSES[sender])
        details["wire"] = tw.to_dict()
        claimed = details.get("iperf3", {}).get("bytes") or 0
        if tw.goodput_mbit is not None:
            metrics.append(("goodput_wire", tw.goodput_mbit, "Mbit/s", "wire"))
            metrics.append(("transfer_time", float(tw.duration_s or 0.0), "s", "wire"))
        else:
            problems.append("no TCP data packets in the receiver-side capture")
        # iperf3's test is time-bounded: its receiver rate over its own test interval is the
        # goodput (what the reference figures use); the wire must confirm the bytes it claims.
        if claimed and tw.bytes < 0.99 * claimed:
            problems.append(f"the wire shows {tw.bytes} bytes, iperf3 claims {claimed}")
        elif claimed and not problems:
            bps = details["iperf3"]["bits_per_second"]
            metrics.append(("goodput", bps / 1e6, "Mbit/s", "peer"))
        lm, ld = link_loss_metrics(ctx.dir, f"tcp.port == {IPERF_PORT}", ctx.capture_counts)
        metrics += lm
        details.update(link=ld, capture=ctx.capture_counts)
    ok = not problems
    metrics.append(("ok", 1.0 if ok else 0.0, "bool", "runner"))
    bps = details.get("iperf3", {}).get("bits_per_second")
    reason = f"iperf3 receiver {bps / 1e6:.2f} Mbit/s" if ok and bps else "; ".join(problems)
    if not ok:
        details["client_stderr_tail"] = tail(client.stderr_path)
    return RepOutcome(Check(ok, reason, details), tuple(metrics))


SPEC = WorkloadSpec(kind="iperf3", run=run_iperf3)
