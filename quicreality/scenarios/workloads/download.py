"""The ``download`` workload: an HTTP/3 GET of one file over the impaired link.

Captures run on both sides of the link; the server peer serves in the server namespace (our
server with ``--reality-config`` when the workload uses REALITY), the client peer fetches one
file in the client namespace.  The verdict: the file's sha256, then the wire (the key logs merged
and injected into the client-side capture, :mod:`~quicreality.scenarios.wire`) and the qlogs
(:mod:`~quicreality.scenarios.qlogsum`).
"""

from __future__ import annotations

import shutil
from typing import Any

from ..peers import get_peer
from ..peers.base import Command, sha256_file, url_for
from ..peers.process import PeerFailed
from ..results import Check
from ..topology import ADDRESSES
from ..wire import quic_wire
from .context import (
    QUIC_PORT,
    Metric,
    RepContext,
    RepOutcome,
    WorkloadSpec,
    download_command,
    finish_keys,
    serve_command,
    tail,
)
from .measures import cpu_metrics, link_loss_metrics, qlog_metrics
from .reality import reality_client_args, start_reality_server

__all__ = ["SPEC", "run_download"]


def run_download(ctx: RepContext) -> RepOutcome:
    """HTTP/3 GET of one file: client peer ← server peer over the impaired link."""
    w = ctx.workload
    assert w.size_bytes is not None
    name, sha = ctx.assets.file_for(w.size_bytes)
    srv_addr = ADDRESSES["server"]
    url = url_for(srv_addr, QUIC_PORT, name)
    out_dir = ctx.assets.dir / f"dl-{w.name}-{ctx.rep}"
    timeout = w.effective_timeout_s()
    ctx.start_captures()
    if w.reality:
        server = start_reality_server(ctx)
    else:
        cmd = serve_command(w.server, ctx, host=srv_addr, www=ctx.assets.www,
                            congestion=w.congestion)
        server = ctx.start(cmd, "server", "server", env=ctx.tls_env("server"))
        server.wait_udp_ready(QUIC_PORT, timeout=20)
    ccmd, req = download_command(w.client, ctx, url, out_dir, timeout, verify=not w.reality)
    if w.reality:
        ccmd = Command(argv=(*ccmd.argv, *reality_client_args(ctx)), env=ccmd.env, cwd=ccmd.cwd,
                       make_dirs=ccmd.make_dirs)
    client = ctx.start(ccmd, "client", "client", env=ctx.tls_env("client"))
    details: dict[str, Any] = {"url": url, "file_bytes": w.size_bytes, "expected_sha256": sha}
    try:
        rc, secs = ctx.wait(client, timeout + 15)
    except PeerFailed as e:
        server_rc = server.proc.poll() if server.proc is not None else None
        ctx.close()
        reason = str(e).splitlines()[0]
        if server_rc is not None:
            reason = (f"server crashed (exit {server_rc}, stderr kept in server.stderr: "
                      f"{tail(server.stderr_path, 1) or 'empty'}); then {reason}")
        return RepOutcome(Check(False, reason, {
            **details, "server_exit": server_rc, "client_stderr_tail": tail(client.stderr_path),
            "server_stderr_tail": tail(server.stderr_path)}))
    server_rc = server.proc.poll() if server.proc is not None else None
    server.stop()
    ctx.stop_captures()
    details.update({"client_exit": rc, "client_secs": round(secs, 3),
                    "server_exited_early": server_rc})
    spec = get_peer(w.client)
    assert spec.parse is not None
    results = spec.parse(client.stdout(), client.stderr(), req)
    res = results[0] if results else None
    path = res.file if res is not None and res.file is not None else out_dir / name
    got_sha = sha256_file(path) if path.exists() else None
    got_bytes = path.stat().st_size if path.exists() else 0
    shutil.rmtree(out_dir, ignore_errors=True)  # the body itself is not kept (sha256 is)
    details.update({"sha256": got_sha, "bytes": got_bytes,
                    "peer_result": {"status": res.status if res else None,
                                    "bytes": res.bytes if res else None,
                                    "secs": res.secs if res else None,
                                    "error": res.error if res else "no result"}})
    metrics: list[Metric] = [("file_bytes", float(got_bytes), "bytes", "runner"),
                             ("client_elapsed", secs, "s", "runner")]
    metrics += cpu_metrics({"server": server.cpu_s, "client": client.cpu_s}, w.size_bytes)
    if res is not None and res.secs and res.bytes:
        metrics.append(("goodput_reported", res.bytes * 8 / res.secs / 1e6, "Mbit/s", "peer"))
    pcapng = finish_keys(ctx.dir)
    wire = quic_wire(str(pcapng or ctx.dir / "client.pcap"), server_addr=srv_addr,
                     server_port=QUIC_PORT, file_bytes=w.size_bytes)
    details["wire"] = wire.to_dict()
    if wire.goodput_mbit is not None:
        metrics.append(("goodput", wire.goodput_mbit, "Mbit/s", "wire"))
    if wire.duration_s is not None:
        metrics.append(("transfer_time", wire.duration_s, "s", "wire"))
    if wire.handshake_ms is not None:
        metrics.append(("handshake_ms", wire.handshake_ms, "ms", "wire"))
    qm, qd = qlog_metrics(ctx.dir, sender="server")
    lm, ld = link_loss_metrics(ctx.dir, f"udp.port == {QUIC_PORT}", ctx.capture_counts)
    metrics += qm + lm
    details.update(qlog=qd, link=ld, capture=ctx.capture_counts)
    problems = []
    if rc != 0:
        problems.append(f"client exit {rc}: {tail(client.stderr_path, 3) or 'no stderr'}")
    if got_sha != sha:
        problems.append(f"body {'missing' if got_sha is None else 'differs'} "
                        f"({got_bytes} of {w.size_bytes} bytes)")
    if server_rc is not None:
        problems.append(f"server crashed (exit {server_rc}, stderr kept in server.stderr: "
                        f"{tail(server.stderr_path, 1) or 'empty'})")
    if wire.goodput_mbit is None:
        problems.append("no server 1-RTT payload packets in the client-side capture")
    elif w.min_goodput_mbit is not None and wire.goodput_mbit < w.min_goodput_mbit:
        problems.append(f"goodput {wire.goodput_mbit:.2f} < {w.min_goodput_mbit} Mbit/s")
    ok = not problems
    metrics.append(("ok", 1.0 if ok else 0.0, "bool", "runner"))
    reason = (f"{w.size_bytes} bytes sha256 ok, {wire.goodput_mbit:.2f} Mbit/s on the wire"
              if ok and wire.goodput_mbit is not None else "; ".join(problems))
    if not ok:
        details["client_stderr_tail"] = tail(client.stderr_path)
    return RepOutcome(Check(ok, reason, details), tuple(metrics))


SPEC = WorkloadSpec(kind="download", run=run_download)
