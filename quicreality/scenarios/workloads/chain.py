"""The ``chain`` workload: iperf3 through a chain of REALITY relays over two impaired links.

Runs in the chain topology (a scenario with ``[link2]``; see :mod:`..topology`)::

    client ns                 middle ns                      server ns            target ns
    iperf3 -> relay-client ==link==> hop 1 (REALITY, ==link2==> hop 2 (REALITY,  --> iperf3 -s
                                     [relay.upstream])          [relay])

``hops`` picks what crosses the two links:

* ``2``: relay-client -> hop 1 in the middle -> hop 2 in the server namespace -> iperf3 in the
  target namespace (``RAW -> QUIC_REALITY -> QUIC_REALITY -> RAW``); hop 1 has its own keys;
* ``1``: relay-client -> our server in the server namespace (the middle only forwards IP
  packets) -> iperf3 in the target namespace;
* ``0``: direct TCP, iperf3 client -> iperf3 server in the server namespace, routed through
  the middle: the baseline over the same two links. ``congestion`` (``-C``) names its
  algorithm and the check fails if the sender used another.

``parallel`` is iperf3's ``-P``. The goodput is iperf3's receiver rate (through relays the
links carry QUIC, so the TCP sockets are local hops; no captures are taken). The relays'
``--metrics-listen`` byte counters are read at the end (``relay_bytes_*`` metrics).
"""

from __future__ import annotations

import json
from typing import Any

from ..peers import iperf3 as iperf3_peer
from ..peers import paths
from ..peers.base import Command, Unsupported
from ..peers.process import PeerFailed
from ..results import Check
from ..topology import ADDRESSES
from .context import IPERF_PORT, QUIC_PORT, Metric, RepContext, RepOutcome, WorkloadSpec, tail
from .iperf3 import flush_tcp_metrics, iperf_outcome
from .reality import SERVER_NAME, reality_material, start_target, write_reality_config

__all__ = ["SPEC", "run_chain"]

#: Where ``relay-client`` listens for iperf3 in the client namespace.
LISTEN_PORT = 15201
#: The relays' metrics ports (inside their own namespaces, on loopback).
METRICS_PORT = 9464


def _keygen(ctx: RepContext, key: str) -> dict[str, Any]:
    """A second key pair for the middle hop (its upstream must not be itself), made once."""
    got = ctx.assets.reality.get(key)
    if got:
        return dict(got)
    r = ctx.topo.run("client", [str(paths.python()), "-m", "quicreality", "keygen", "--json"],
                     timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"keygen failed: {r.stderr.strip()}")
    doc = json.loads(r.stdout)
    ctx.assets.reality[key] = doc
    return dict(doc)


def _our_server(ctx: RepContext, host: str, cfg_path: str) -> Command:
    """Our REALITY relay server in ``host`` (server or middle), metrics on its loopback."""
    bind = ADDRESSES["middle"] if host == "middle" else ADDRESSES["server"]
    return Command(argv=(str(paths.python()), "-m", "quicreality", "server", "--listen",
                         f"{bind}:{QUIC_PORT}", "--reality-config", cfg_path,
                         "--metrics-listen", f"127.0.0.1:{METRICS_PORT}",
                         *(("--congestion", ctx.workload.congestion)
                           if ctx.workload.congestion else ())),
                   cwd=paths.REPO_ROOT)


def _start_middle(ctx: RepContext, dest: str) -> None:
    """Hop 1 in the middle namespace: its own keys, ``[relay.upstream]`` = the server."""
    mine = _keygen(ctx, "middle")
    up = reality_material(ctx)
    text = "\n".join([
        "[reality]", f"private_key = {json.dumps(mine['private_key'])}",
        f"server_names = {json.dumps([SERVER_NAME])}",
        f"short_ids = {json.dumps([mine['short_id']])}",
        f"target = {json.dumps(ADDRESSES['target'] + ':443')}", "max_time_diff_ms = 60000", "",
        "[relay]", f"allow = {json.dumps([dest])}", "",
        "[relay.upstream]", f"server = {json.dumps(ADDRESSES['server'] + ':' + str(QUIC_PORT))}",
        f"public_key = {json.dumps(up['public_key'])}", f"short_id = {json.dumps(up['short_id'])}",
        f"server_name = {json.dumps(SERVER_NAME)}", ""])
    path = ctx.dir / "reality-middle.toml"
    path.write_text(text)
    p = ctx.start(_our_server(ctx, "middle", str(path)), "middle", "middle")
    p.wait_udp_ready(QUIC_PORT, timeout=20)


def _relay_bytes(ctx: RepContext, host: str) -> dict[str, float]:
    """The relay's server-side byte counters (up, down) from its metrics endpoint."""
    r = ctx.topo.run(host, [str(paths.python()), "-c",
                            "import sys,urllib.request;sys.stdout.write(urllib.request.urlopen("
                            f"'http://127.0.0.1:{METRICS_PORT}/metrics',timeout=5).read().decode())"],
                     timeout=30)
    out = {"up": 0.0, "down": 0.0}
    for line in r.stdout.splitlines():
        if line.startswith("quicreality_relay_bytes_total{") and 'side="server"' in line:
            for d in out:
                if f'direction="{d}"' in line:
                    out[d] += float(line.rsplit(" ", 1)[1])
    return out


def run_chain(ctx: RepContext) -> RepOutcome:
    """One iperf3 test through ``hops`` relays (0: direct TCP) over both links."""
    w = ctx.workload
    assert w.seconds is not None
    if ctx.scenario.link2 is None or "middle" not in ctx.topo.hosts:
        raise Unsupported("the chain workload needs the chain topology (a [link2] table)")
    if w.hops and "relay" not in ctx.assets.features:
        raise Unsupported("this checkout's `python -m quicreality` has no relay-client")
    flush_tcp_metrics(ctx)
    if w.hops == 0:
        host, addr, port = "server", ADDRESSES["server"], IPERF_PORT
    else:
        host, addr, port = "target", "127.0.0.1", LISTEN_PORT
    srv_addr = ADDRESSES["server"] if w.hops == 0 else ADDRESSES["target"]
    iperf_srv = ctx.start(iperf3_peer.server(srv_addr, IPERF_PORT), host, "iperf3-server")
    iperf_srv.wait_tcp_ready(IPERF_PORT, timeout=10)
    relays: list[str] = []
    rproc = None
    if w.hops:
        dest = f"{ADDRESSES['target']}:{IPERF_PORT}"
        start_target(ctx)  # the last hop's fallback target
        cfg = write_reality_config(ctx, relay_allow=[dest])
        last = ctx.start(_our_server(ctx, "server", str(cfg)), "server", "server")
        last.wait_udp_ready(QUIC_PORT, timeout=20)
        relays.append("server")
        entry = (ADDRESSES["server"], reality_material(ctx))
        if w.hops == 2:
            _start_middle(ctx, dest)
            relays.insert(0, "middle")
            entry = (ADDRESSES["middle"], _keygen(ctx, "middle"))
        key = entry[1]
        relay = Command(argv=(str(paths.python()), "-m", "quicreality", "relay-client",
                              "--server", f"{entry[0]}:{QUIC_PORT}",
                              f"--reality-public-key={key['public_key']}",
                              "--short-id", key["short_id"], "--server-name", SERVER_NAME,
                              "--tcp-listen", f"127.0.0.1:{LISTEN_PORT}", "--forward", dest),
                        cwd=paths.REPO_ROOT)
        rproc = ctx.start(relay, "client", "relay-client", env=ctx.tls_env("client"))
        rproc.wait_tcp_ready(LISTEN_PORT, timeout=30)
    req = iperf3_peer.IperfRequest(host=addr if w.hops == 0 else "127.0.0.1", port=port,
                                   seconds=w.seconds, reverse=w.reverse, congestion=w.congestion)
    cmd = iperf3_peer.client(req)
    client = ctx.start(Command(argv=(*cmd.argv, "-P", str(w.parallel), "--get-server-output")),
                       "client", "client")
    try:
        rc, secs = ctx.wait(client, w.effective_timeout_s())
    except PeerFailed as e:
        fail: dict[str, Any] = {"client_stderr_tail": tail(client.stderr_path)}
        if rproc is not None:
            fail["relay_stderr_tail"] = tail(rproc.stderr_path)
        ctx.close()
        return RepOutcome(Check(False, str(e).splitlines()[0], fail))
    counts = {h: _relay_bytes(ctx, h) for h in relays}
    ctx.stop_processes()
    out = iperf_outcome(ctx, client, rc, secs, sender="server" if w.reverse else "client",
                        wire=False)
    metrics: list[Metric] = []
    for name, value, unit, source in out.metrics:
        if w.hops:  # through relays iperf3's RTT and retransmits are its local TCP hop's
            name = {"rtt_mean_ms": "local_tcp_rtt_mean_ms",
                    "retransmits": "local_tcp_retransmits"}.get(name, name)
        metrics.append((name, value, unit, source))
    details: dict[str, Any] = dict(out.check.details)
    problems = [] if out.check.ok else [out.check.reason]
    got_cc = details.get("iperf3", {}).get("sender_tcp_congestion")
    if w.hops == 0 and w.congestion and got_cc != w.congestion:
        problems.append(f"sender used {got_cc!r}, not {w.congestion!r}")
    for name, value, unit, source in out.metrics:
        if name == "goodput_reported":
            metrics.append(("goodput", value, unit, source))
    for h, c in counts.items():
        metrics += [(f"relay_bytes_up_{h}", c["up"], "bytes", "peer"),
                    (f"relay_bytes_down_{h}", c["down"], "bytes", "peer")]
    details.update(hops=w.hops, parallel=w.parallel, relay_bytes=counts)
    if rproc is not None:
        details["relay_stderr_tail"] = tail(rproc.stderr_path)
    ok = not problems
    reason = out.check.reason if ok else "; ".join(problems)
    return RepOutcome(Check(ok, reason, details), tuple(metrics))


SPEC = WorkloadSpec(kind="chain", run=run_chain)
