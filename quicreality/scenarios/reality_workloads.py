"""REALITY workloads: REALITY downloads, fallback to the target, iperf3 through the relay.

Theory of operation
-------------------
These workloads need features of our stack that arrive separately (issue 3:
REALITY, issue 4: the relay).  :func:`probe_features` asks the installed CLI
(``python -m quicreality --help`` and ``server --help``) what it offers; the
runner does not start a workload whose feature is missing and reports it as
*not run* (never as passed).

Topology use::

    client ns                     server ns                        target ns
    our client / curl  ==link==>  our server --reality-config  -->  target peer :443 (page)
    iperf3 -> relay-client :15201 ==link==> our server [relay]  -->  iperf3 -s :5201

The REALITY material (X25519 key pair, short id) is made once per run with
``python -m quicreality keygen --json``; the server's TOML config is written
into the repetition directory (it is part of what reproduces the run).
"""

from __future__ import annotations

import functools
import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from .peers import iperf3 as iperf3_peer
from .peers import paths
from .peers.base import Command, Unsupported, sha256_file, url_for
from .peers.process import PeerFailed, PeerProcess
from .results import Check
from .tcp_workloads import iperf_outcome
from .topology import ADDRESSES
from .wire import quic_wire
from .workloads import (
    IPERF_PORT,
    QUIC_PORT,
    Metric,
    RepContext,
    RepOutcome,
    _finish_keys,
    _tail,
    download_command,
    link_loss_metrics,
    qlog_metrics,
    serve_command,
)

__all__ = ["probe_features", "reality_client_args", "run_fallback", "run_relay_iperf3",
           "start_reality_server"]

#: The SNI our REALITY client sends; it is in the server's ``server_names``.
SERVER_NAME = "www.quicreality.test"
RELAY_LISTEN_PORT = 15201
TARGET_PAGE = "index.html"


def _help(args: list[str]) -> str:
    try:
        r = subprocess.run([sys.executable, "-m", "quicreality", *args, "--help"],
                           capture_output=True, text=True, timeout=30, check=False,
                           cwd=paths.REPO_ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout + r.stderr


@functools.cache
def probe_features() -> frozenset[str]:
    """What ``python -m quicreality`` offers here: ``reality`` and/or ``relay``.

    ``reality`` needs ``keygen``, ``server --reality-config`` and
    ``client --reality-public-key``; ``relay`` needs ``relay-client`` as well.
    """
    top = _help([])
    have: set[str] = set()
    if ("keygen" in top and "--reality-config" in _help(["server"])
            and "--reality-public-key" in _help(["client"])):
        have.add("reality")
        if "relay-client" in top and "--tcp-listen" in _help(["relay-client"]):
            have.add("relay")
    return frozenset(have)


def reality_material(ctx: RepContext) -> dict[str, Any]:
    """Run-wide key pair and short id (``keygen --json``), made on first use."""
    if ctx.assets.reality:
        return ctx.assets.reality
    r = subprocess.run([sys.executable, "-m", "quicreality", "keygen", "--json"],
                       capture_output=True, text=True, timeout=30, check=False,
                       cwd=paths.REPO_ROOT)
    if r.returncode != 0:
        raise RuntimeError(f"keygen failed: {r.stderr.strip()}")
    doc = json.loads(r.stdout)
    priv = doc.get("private_key") or doc.get("privateKey")
    pub = doc.get("public_key") or doc.get("publicKey") or doc.get("password")
    sid = doc.get("short_id") or doc.get("shortId") or secrets.token_hex(4)
    if not priv or not pub:
        raise RuntimeError(f"keygen --json gave no private/public key: {sorted(doc)}")
    ctx.assets.reality.update({"private_key": priv, "public_key": pub, "short_id": sid,
                               "keygen": doc})
    return ctx.assets.reality


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def write_reality_config(ctx: RepContext, *, relay_allow: list[str] | None = None) -> Path:
    """The server's ``--reality-config`` TOML, in the repetition directory."""
    m = reality_material(ctx)
    target = f"{ADDRESSES['target']}:{QUIC_PORT}"
    lines = ["[reality]", f"private_key = {json.dumps(m['private_key'])}",
             f"server_names = {_toml_list([SERVER_NAME])}",
             f"short_ids = {_toml_list([m['short_id']])}",
             f"target = {json.dumps(target)}",
             "max_time_diff_ms = 60000"]
    if relay_allow:
        lines += ["", "[relay]", f"allow = {_toml_list(relay_allow)}"]
    path = ctx.dir / "reality-server.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def reality_client_args(ctx: RepContext) -> list[str]:
    """``--reality-public-key K --short-id S --server-name SNI`` for our client."""
    m = reality_material(ctx)
    return ["--reality-public-key", m["public_key"], "--short-id", m["short_id"],
            "--server-name", SERVER_NAME]


def _target_www(ctx: RepContext) -> tuple[Path, str]:
    """The target's site: a page our server does not have; (dir, sha256 of the page)."""
    www = ctx.assets.dir / "target-www"
    page = www / TARGET_PAGE
    if not page.exists():
        www.mkdir(parents=True, exist_ok=True)
        page.write_text("<!doctype html><title>target</title>"
                        f"<p>the real QUIC site behind the REALITY listener {secrets.token_hex(8)}\n")
    return www, sha256_file(page)


def start_target(ctx: RepContext) -> PeerProcess:
    """The fallback target (``workload.target`` peer) on target:443 in the target namespace."""
    www, _ = _target_www(ctx)
    cmd = serve_command(ctx.workload.target, ctx, host=ADDRESSES["target"], www=www, role="target")
    p = ctx.start(cmd, "target", "target", env=ctx.tls_env("target"))
    p.wait_udp_ready(QUIC_PORT, timeout=20)
    return p


def start_reality_server(ctx: RepContext, *, relay_allow: list[str] | None = None) -> PeerProcess:
    """Target first, then our server with ``--reality-config`` on server:443."""
    if "reality" not in ctx.assets.features:
        raise Unsupported("this checkout's `python -m quicreality` has no REALITY options")
    start_target(ctx)
    cfg = write_reality_config(ctx, relay_allow=relay_allow)
    base = serve_command("ours", ctx, host=ADDRESSES["server"], www=ctx.assets.www,
                         congestion=ctx.workload.congestion)
    extra = ["--reality-config", str(cfg)]
    if relay_allow:
        extra += ["--relay-config", str(cfg)]  # one file, [reality] and [relay] tables
    cmd = Command(argv=(*base.argv, *extra), env=base.env, cwd=base.cwd, make_dirs=base.make_dirs)
    p = ctx.start(cmd, "server", "server", env=ctx.tls_env("server"))
    p.wait_udp_ready(QUIC_PORT, timeout=20)
    return p


def run_fallback(ctx: RepContext) -> RepOutcome:
    """A client without REALITY credentials asks the listener and must get the target's page."""
    w = ctx.workload
    _, want_sha = _target_www(ctx)
    ctx.start_captures()
    start_reality_server(ctx)
    url = url_for(ADDRESSES["server"], QUIC_PORT, TARGET_PAGE)
    out_dir = ctx.assets.dir / f"dl-{w.name}-{ctx.rep}"
    timeout = w.effective_timeout_s()
    ccmd, _ = download_command(w.client, ctx, url, out_dir, timeout)
    client = ctx.start(ccmd, "client", "client", env=ctx.tls_env("client"))
    try:
        rc, secs = ctx.wait(client, timeout + 15)
    except PeerFailed as e:
        return RepOutcome(Check(False, str(e).splitlines()[0],
                                {"client_stderr_tail": _tail(client.stderr_path)}))
    ctx.stop_processes()
    ctx.stop_captures()
    page = out_dir / TARGET_PAGE
    got = sha256_file(page) if page.exists() else None
    body = page.read_text(errors="replace")[:200] if page.exists() else None
    pcapng = _finish_keys(ctx.dir)
    wire = quic_wire(str(pcapng or ctx.dir / "client.pcap"), server_addr=ADDRESSES["server"],
                     server_port=QUIC_PORT, file_bytes=page.stat().st_size if page.exists() else 0)
    metrics: list[Metric] = [("client_elapsed", secs, "s", "runner")]
    if wire.handshake_ms is not None:
        metrics.append(("handshake_ms", wire.handshake_ms, "ms", "wire"))
    ok = rc == 0 and got == want_sha
    metrics.append(("ok", 1.0 if ok else 0.0, "bool", "runner"))
    reason = ("the target's page came back byte-identical through the REALITY listener" if ok
              else f"client exit {rc}; page sha256 {got} != target's {want_sha}")
    details = {"url": url, "target": w.target, "expected_sha256": want_sha, "sha256": got,
               "body_head": body, "wire": wire.to_dict(), "client_exit": rc}
    if not ok:
        details["client_stderr_tail"] = _tail(client.stderr_path)
    return RepOutcome(Check(ok, reason, details), tuple(metrics))


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
    m = reality_material(ctx)
    relay = Command(argv=(str(paths.python()), "-m", "quicreality", "relay-client",
                          "--server", f"{ADDRESSES['server']}:{QUIC_PORT}",
                          "--reality-public-key", m["public_key"], "--short-id", m["short_id"],
                          "--server-name", SERVER_NAME,
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
                                {"client_stderr_tail": _tail(client.stderr_path),
                                 "relay_stderr_tail": _tail(rproc.stderr_path)}))
    ctx.stop_processes()
    ctx.stop_captures()
    pcapng = _finish_keys(ctx.dir)
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
    details.update(relay_stderr_tail=_tail(rproc.stderr_path), qlog=qd, link=ld,
                   capture=ctx.capture_counts, wire=wire.to_dict())
    return RepOutcome(Check(out.check.ok, out.check.reason, details), tuple(metrics))
