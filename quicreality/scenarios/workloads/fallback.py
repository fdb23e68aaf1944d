"""The ``fallback`` workload: a client without REALITY credentials must get the target's page.

Our REALITY listener cannot authenticate the client, so it forwards the connection to the
target (a real QUIC site in the target namespace); the verdict is the page's sha256 against the
target's, and the handshake time on the wire.
"""

from __future__ import annotations

from ..peers.base import sha256_file, url_for
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
    tail,
)
from .reality import TARGET_PAGE, start_reality_server, target_www

__all__ = ["SPEC", "run_fallback"]


def run_fallback(ctx: RepContext) -> RepOutcome:
    """A client without REALITY credentials asks the listener and must get the target's page."""
    w = ctx.workload
    _, want_sha = target_www(ctx)
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
                                {"client_stderr_tail": tail(client.stderr_path)}))
    ctx.stop_processes()
    ctx.stop_captures()
    page = out_dir / TARGET_PAGE
    got = sha256_file(page) if page.exists() else None
    body = page.read_text(errors="replace")[:200] if page.exists() else None
    pcapng = finish_keys(ctx.dir)
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
        details["client_stderr_tail"] = tail(client.stderr_path)
    return RepOutcome(Check(ok, reason, details), tuple(metrics))


SPEC = WorkloadSpec(kind="fallback", run=run_fallback)
