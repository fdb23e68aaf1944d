"""What the REALITY workloads share: feature probing, key material, the target, our listener.

Used by ``download`` (with ``reality = true``), ``fallback`` and ``relay-iperf3``.

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

from ..peers import paths
from ..peers.base import Command, Unsupported, sha256_file
from ..peers.process import PeerProcess
from ..topology import ADDRESSES
from .context import QUIC_PORT, RepContext, serve_command

__all__ = ["SERVER_NAME", "TARGET_PAGE", "probe_features", "reality_client_args",
           "reality_material", "start_reality_server", "start_target", "target_marker",
           "target_www", "write_reality_config"]

#: The SNI our REALITY client sends; it is in the server's ``server_names``.
SERVER_NAME = "www.quicreality.test"
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
    """``--reality-public-key=K --short-id S --server-name SNI`` for our client.

    The ``=`` form: a base64url key may start with ``-``, which argparse would take for an option.
    """
    m = reality_material(ctx)
    return [f"--reality-public-key={m['public_key']}", "--short-id", m["short_id"],
            "--server-name", SERVER_NAME]


def target_www(ctx: RepContext) -> tuple[Path, str]:
    """The target's site: a page our server does not have; (dir, sha256 of the page)."""
    www = ctx.assets.dir / "target-www"
    page = www / TARGET_PAGE
    if not page.exists():
        www.mkdir(parents=True, exist_ok=True)
        page.write_text("<!doctype html><title>target</title>"
                        f"<p>the real QUIC site behind the REALITY listener {secrets.token_hex(8)}\n")
    return www, sha256_file(page)


def target_marker(ctx: RepContext) -> str:
    """The text of the target page's paragraph: a run-unique token a browser's DOM must show.

    A DOM dump (Chromium's ``--dump-dom``) is the parsed page re-serialised, not the served
    bytes, so a browser's download is checked by this text rather than by sha256.
    """
    www, _ = target_www(ctx)
    return (www / TARGET_PAGE).read_text().split("<p>", 1)[1].strip()


def start_target(ctx: RepContext) -> PeerProcess:
    """The fallback target (``workload.target`` peer) on target:443 in the target namespace."""
    www, _ = target_www(ctx)
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
