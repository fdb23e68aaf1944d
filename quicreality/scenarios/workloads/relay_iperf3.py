"""The ``relay-iperf3`` workload: iperf3 TCP through ``RAW -> QUIC_REALITY -> RAW``.

iperf3's client talks to our ``relay-client`` in the client namespace, which carries the TCP
stream over REALITY-authenticated QUIC to our server, which connects to the iperf3 server in the
target namespace (the relay's allow-list names only it).  The link carries QUIC, so iperf3's
receiver rate is the goodput, and RTT and loss come from the qlogs; iperf3's own RTT and
retransmits are those of its local TCP hop and are renamed ``local_tcp_*``.
"""

from __future__ import annotations

from ..peers import iperf3 as iperf3_peer
from ..peers import paths
from ..peers.base import Command, Unsupported
from ..peers.process import PeerFailed
from ..results import Check
from ..topology import ADDRESSES
from ..wire import quic_wire
from .context import (
    IPERF_PORT,
    QUIC_PORT,
    Metric,
    RepContext,
    RepOutcome,
    WorkloadSpec,
    finish_keys,
    tail,
)
from .iperf3 import iperf_outcome
from .measures import link_loss_metrics, qlog_metrics
from .reality import reality_client_args, start_reality_server

__all__ = ["RELAY_LISTEN_PORT", "SPEC", "run_relay_iperf3"]

#: Where ``relay-client`` listens for iperf3 in the client namespace.
RELAY_LISTEN_PORT = 15201


def run_relay_iperf3(ctx: RepContext) -> RepOutcome:
    """iperf3 TCP through RAW -> QUIC_REALITY -> RAW: relay-client → our server → target."""
    w = ctx.workload
    assert w.seconds is not None
    if "relay" not in ctx.assets.features:
        raise Unsupported("this checkout's `python -m quicreality` has no relay-client")
    dest = f"{ADDRESSES['target']}:{IPERF_PORT}"
    ctx.start_captures()
    iperf_srv = ctx.start(iperf3_peer.server(ADDRESSES["target"], IPERF_PORT), "target",
                          "iperf3-server")
    iperf_srv.wait_tcp_ready(IPERF_PORT, timeout=10)
    start_reality_server(ctx, relay_allow=[dest])
    relay = Command(argv=(str(paths.python()), "-m", "quicreality", "relay-client",
                          "--server", f"{ADDRESSES['server']}:{QUIC_PORT}",
                          *reality_client_args(ctx),
                          "--tcp-listen", f"127.0.0.1:{RELAY_LISTEN_PORT}", "--forward", dest),
                    cwd=paths.REPO_ROOT)
    rproc = ctx.start(relay, "client", "relay-client", env=ctx.tls_env("client"))
    rproc.wait_tcp_ready(RELAY_LISTEN_PORT, timeout=20)
    req = iperf3_peer.IperfRequest(host="127.0.0.1", port=RELAY_LISTEN_PORT, seconds=w.seconds,
                                   reverse=w.reverse)
    client = ctx.start(iperf3_peer.client(req), "client", "client")
    try:
        rc, secs = ctx.wait(client, w.effective_timeout_s())
    except PeerFailed as e:
        return RepOutcome(Check(False, str(e).splitlines()[0],
                                {"client_stderr_tail": tail(client.stderr_path),
                                 "relay_stderr_tail": tail(rproc.stderr_path)}))
    ctx.stop_processes()
    ctx.stop_captures()
    pcapng = finish_keys(ctx.dir)
    sender = "server" if w.reverse else "client"
    out = iperf_outcome(ctx, client, rc, secs, sender=sender, wire=False)
    metrics: list[Metric] = []
    for name, value, unit, source in out.metrics:
        # iperf3's RTT and retransmits are those of its local TCP hop, not of the QUIC link
        name = {"rtt_mean_ms": "local_tcp_rtt_mean_ms",
                "retransmits": "local_tcp_retransmits"}.get(name, name)
        metrics.append((name, value, unit, source))
        if name == "goodput_reported":  # the link carries QUIC: iperf3's receiver rate is it
            metrics.append(("goodput", value, unit, source))
    qm, qd = qlog_metrics(ctx.dir, sender=sender)
    lm, ld = link_loss_metrics(ctx.dir, f"udp.port == {QUIC_PORT}", ctx.capture_counts)
    wire = quic_wire(str(pcapng or ctx.dir / "client.pcap"), server_addr=ADDRESSES["server"],
                     server_port=QUIC_PORT, file_bytes=0)
    if wire.handshake_ms is not None:
        metrics.append(("handshake_ms", wire.handshake_ms, "ms", "wire"))
    metrics += qm + lm
    details = dict(out.check.details)
    details.update(relay_stderr_tail=tail(rproc.stderr_path), qlog=qd, link=ld,
                   capture=ctx.capture_counts, wire=wire.to_dict())
    return RepOutcome(Check(out.check.ok, out.check.reason, details), tuple(metrics))


SPEC = WorkloadSpec(kind="relay-iperf3", run=run_relay_iperf3)
