"""The ``censored`` workload: a client downloads through the on-path censor; did it get through?

The scenario's ``[censor]`` runs in the userspace emulator (:mod:`..emulator.censor_stage`) and
logs every decision to the run's ``censor.jsonl``; this workload copies the records of its own
repetition into the repetition directory and turns them into samples:

* ``blocked`` (0/1): a policy blocked the client's flow (or its 3-tuple);
* ``time_to_block_ms``: from the flow's first packet to the block decision;
* ``censor_reason``: value 1, ``unit`` = the blocking policy (``none`` when not blocked); the
  reason in words is in check.json and censor.jsonl;
* ``probe_verdict``: 1 = ``target-like``, 0 = ``distinct`` (only when the prober ran);
* ``transfer_ok`` (0/1): the body arrived byte-exact (sha256); for Chromium, whose output is
  the re-serialised DOM, the target page's run-unique paragraph text is in the DOM;
* ``goodput`` (Mbit/s, from the wire) when it got through.

Clients: ``ours`` (plain, or REALITY with ``reality = true`` and its ``carrier`` and
``fingerprint``), ``curl`` (the SNI through ``--resolve``), ``quicgo`` (it connects to the
address, so it sends no SNI) and ``chromium`` (to the target's page through the REALITY
listener, the SNI mapped with ``--resolve``). The check passes when the outcome is the
workload's ``expect`` (``blocked`` | ``passed``), or, without ``expect``, when the client ran.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..censor.config import probe_settings
from ..peers import get_peer
from ..peers.base import Command, sha256_file, url_for
from ..peers.process import PeerFailed, PeerProcess
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
from .reality import (
    SERVER_NAME,
    TARGET_PAGE,
    reality_client_args,
    start_reality_server,
    start_target,
    target_marker,
    target_www,
)

__all__ = ["BLOCK_GRACE_S", "SPEC", "BlockWatch", "await_probe_verdict", "censor_records",
           "censor_samples", "probe_pending", "run_censored"]

#: How long a blocked client may go on after the censor's block decision before it is stopped.
BLOCK_GRACE_S = 2.0


def _log_size(path: str | None) -> int:
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0


class BlockWatch:
    """Follows the censor log while the client runs: has the censor blocked this client?

    Args:
        path: The run's ``censor.jsonl`` (None: no censor, never blocked).
        offset: Where this repetition's records start.
        client: The client's address.
        grace_s: How long the client may still run after the block decision (it may have
            finished the transfer just before; a block drops everything after).
        clock: Monotonic seconds.
    """

    def __init__(self, path: str | None, offset: int, client: str, *,
                 grace_s: float = BLOCK_GRACE_S, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.path, self.offset, self.client = path, offset, client
        self.grace_s, self.clock = grace_s, clock
        self.blocked_at: float | None = None
        self.fired = False

    def __call__(self) -> bool:
        """True once the client was blocked ``grace_s`` ago (the wait may end)."""
        if self.blocked_at is None:
            self._read()
        self.fired = self.blocked_at is not None and self.clock() - self.blocked_at >= self.grace_s
        return self.fired

    def _read(self) -> None:
        if not self.path:
            return
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # complete lines only
        self.offset += end
        for line in data[:end].splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("client") == self.client and r.get("action") == "block":
                self.blocked_at = self.clock()
                return


def censor_records(path: str | None, offset: int, client: str) -> list[dict[str, Any]]:
    """Decision records about ``client`` appended to the run's censor log after ``offset``."""
    if not path:
        return []
    try:
        with open(path) as f:
            f.seek(offset)
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("client") == client:
            out.append(r)
    return out


def probe_pending(records: list[dict[str, Any]]) -> bool:
    """True if the censor sent for the prober about a flow and its verdict is not in yet."""
    asked = {r["flow"] for r in records if r.get("action") == "probe"}
    answered = {r["flow"] for r in records if "probe_verdict" in r}
    return bool(asked - answered)


def await_probe_verdict(log: str | None, offset: int, client: str, limit_s: float) -> float:
    """Wait (at most ``limit_s``) until every probe about ``client`` has its verdict; seconds
    waited. The servers keep running meanwhile: the prober is probing them."""
    t0 = time.monotonic()
    while (probe_pending(censor_records(log, offset, client))
           and time.monotonic() - t0 < limit_s):
        time.sleep(0.1)
    return time.monotonic() - t0


def censor_samples(records: list[dict[str, Any]]) -> tuple[list[Metric], dict[str, Any]]:
    """The censor samples of one repetition and a summary for the check's details."""
    blocks = [r for r in records if r.get("action") == "block"]
    probes = [r for r in records if "probe_verdict" in r]
    first = blocks[0] if blocks else None
    m: list[Metric] = [("blocked", 1.0 if first else 0.0, "bool", "censor"),
                       ("censor_reason", 1.0, str(first["policy"]) if first else "none", "censor")]
    if first is not None:
        m.append(("time_to_block_ms", float(first.get("flow_age_ms", 0.0)), "ms", "censor"))
        m.append(("blocked_on_packet", float(first.get("packet", 0)), "packets", "censor"))
    if probes:
        m.append(("probe_verdict", 1.0 if probes[0]["probe_verdict"] == "target-like" else 0.0,
                  "target-like=1", "censor"))
    summary = {
        "blocked": first is not None,
        "blocked_by": first["policy"] if first else None,
        "reason": first["reason"] if first else None,
        "time_to_block_ms": first.get("flow_age_ms") if first else None,
        "blocked_on_packet": first.get("packet") if first else None,
        "probe_verdict": probes[0]["probe_verdict"] if probes else None,
        "probe_detail": probes[0]["reason"] if probes else None,
        "decisions": [f"{r['policy']}: {r['action']} ({r['reason']})" for r in records][:20],
    }
    return m, summary


def _with(cmd: Command, *extra: str, drop: tuple[str, ...] = ()) -> Command:
    argv = [a for a in cmd.argv if a not in drop]
    return Command(argv=(*argv, *extra), env=cmd.env, cwd=cmd.cwd, make_dirs=cmd.make_dirs)


def _client_command(ctx: RepContext, name: str, out_dir: Path, timeout: float,
                    sni: str | None, listener: bool) -> tuple[Command, Any, str]:
    """(command, request, url) of the workload's client."""
    w = ctx.workload
    srv = ADDRESSES["server"]
    if w.client == "chromium":
        url = f"https://{sni or SERVER_NAME}/{TARGET_PAGE}"
        cmd, req = download_command("chromium", ctx, url, out_dir, timeout)
        return _with(cmd, "--resolve", srv), req, url
    if w.client == "curl" and sni:
        url = f"https://{sni}:{QUIC_PORT}/{name}"
        verify = sni == SERVER_NAME
        cmd, req = download_command("curl", ctx, url, out_dir, timeout, verify=verify)
        extra = ["--resolve", f"{sni}:{QUIC_PORT}:{srv}"] + ([] if verify else ["-k"])
        return _with(cmd, *extra), req, url
    url = url_for(srv, QUIC_PORT, name)
    if w.client == "ours" and w.reality:
        cmd, req = download_command("ours", ctx, url, out_dir, timeout, verify=False)
        extra = [*reality_client_args(ctx), "--timeout", f"{timeout:g}"]
        if w.fingerprint:
            extra += ["--fingerprint", w.fingerprint]
        if w.carrier:
            extra += ["--carrier", w.carrier]
        return _with(cmd, *extra), req, url
    if w.client == "quicgo":  # verifies the server against the run's CA (-ca), like download
        cmd, req = download_command(w.client, ctx, url, out_dir, timeout)
        return cmd, req, url
    cmd, req = download_command(w.client, ctx, url, out_dir, timeout, verify=False)
    if w.client == "ours":
        return _with(cmd, "--insecure", "--timeout", f"{timeout:g}",
                     *(["--server-name", sni] if sni else [])), req, url
    return _with(cmd, "-k"), req, url


def run_censored(ctx: RepContext) -> RepOutcome:
    """One client download through the censor; samples from the censor's decision log."""
    w = ctx.workload
    assert w.size_bytes is not None
    log = ctx.topo.censor_log
    offset = _log_size(log)
    listener = w.reality or w.client == "chromium"
    marker = None
    if w.client == "chromium":
        _, want_sha = target_www(ctx)
        name, want_bytes, marker = TARGET_PAGE, None, target_marker(ctx)
    else:
        name, want_sha = ctx.assets.file_for(w.size_bytes)
        want_bytes = w.size_bytes
    sni = w.server_name if w.server_name is not None else (SERVER_NAME if listener else None)
    timeout = w.effective_timeout_s()
    out_dir = ctx.assets.dir / f"cens-{w.name}-{ctx.rep}"
    ctx.start_captures()
    server: PeerProcess
    if listener:
        server = start_reality_server(ctx)
    else:
        if "active-probe" in (ctx.topo.censor or {}).get("policies", ()):
            start_target(ctx)  # the real site the prober compares with exists for every row
        cmd = serve_command("ours", ctx, host=ADDRESSES["server"], www=ctx.assets.www,
                            congestion=w.congestion)
        server = ctx.start(cmd, "server", "server", env=ctx.tls_env("server"))
        server.wait_udp_ready(QUIC_PORT, timeout=20)
    ccmd, req, url = _client_command(ctx, name, out_dir, timeout, sni, listener)
    client = ctx.start(ccmd, "client", "client", env=ctx.tls_env("client"))
    details: dict[str, Any] = {"url": url, "sni": sni, "client": w.client, "reality": w.reality,
                               "carrier": w.carrier, "fingerprint": w.fingerprint,
                               "expect": w.expect, "expected_sha256": want_sha}
    rc: int | None
    watch = BlockWatch(log, offset, ADDRESSES["client"])
    try:
        rc, secs = ctx.wait(client, timeout + 5, stop_when=watch)
        if watch.fired:
            details["client_stopped"] = f"{BLOCK_GRACE_S:g} s after the censor's block"
    except PeerFailed as e:
        rc, secs = None, timeout + 5
        details["client_hung"] = str(e).splitlines()[0]
    time.sleep(0.3)  # let the emulator flush the last decisions
    probe = probe_settings(ctx.topo.censor) if ctx.topo.censor else None
    if probe is not None:
        waited = await_probe_verdict(log, offset, ADDRESSES["client"],
                                     probe.delay_s + probe.timeout_s + 2.0)
        details["probe_wait_s"] = round(waited, 3)
    ctx.stop_processes()
    ctx.stop_captures()
    records = censor_records(log, offset, ADDRESSES["client"])
    with open(ctx.dir / "censor.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    metrics, summary = censor_samples(records)
    details["censor"] = summary
    spec = get_peer(w.client)
    results = spec.parse(client.stdout(), client.stderr(), req) if spec.parse else []
    res = results[0] if results else None
    path = res.file if res is not None and res.file is not None else out_dir / name
    got_sha = sha256_file(path) if path.exists() else None
    got_bytes = path.stat().st_size if path.exists() else 0
    if marker is not None:  # a DOM dump: the page's unique text must be in it
        dom = path.read_text(errors="replace") if path.exists() else ""
        transfer_ok = marker in dom
        details.update({"page_marker": marker, "marker_in_dom": transfer_ok})
    else:
        transfer_ok = got_sha == want_sha
    shutil.rmtree(out_dir, ignore_errors=True)
    details.update({"client_exit": rc, "client_secs": round(secs, 3), "sha256": got_sha,
                    "bytes": got_bytes})
    metrics += [("transfer_ok", 1.0 if transfer_ok else 0.0, "bool", "runner"),
                ("client_elapsed", secs, "s", "runner")]
    if transfer_ok and want_bytes:
        pcapng = finish_keys(ctx.dir)
        wire = quic_wire(str(pcapng or ctx.dir / "client.pcap"), server_addr=ADDRESSES["server"],
                         server_port=QUIC_PORT, file_bytes=want_bytes)
        details["wire"] = wire.to_dict()
        if wire.goodput_mbit is not None:
            metrics.append(("goodput", wire.goodput_mbit, "Mbit/s", "wire"))
        if wire.handshake_ms is not None:
            metrics.append(("handshake_ms", wire.handshake_ms, "ms", "wire"))
    blocked = summary["blocked"]
    outcome = "blocked" if blocked and not transfer_ok else (
        "passed" if transfer_ok and not blocked else
        "blocked after the transfer" if blocked else "failed without a block")
    if w.expect is not None:
        ok = outcome == w.expect
        reason = f"{outcome} as expected" if ok else f"expected {w.expect}, got {outcome}"
    else:
        ok = rc is not None
        reason = outcome
    if summary["reason"]:
        reason += f" ({summary['blocked_by']}: {summary['reason']})"
    elif summary["probe_verdict"]:
        reason += f" (probe verdict {summary['probe_verdict']})"
    if not ok:
        details["client_stderr_tail"] = tail(client.stderr_path)
        details["server_stderr_tail"] = tail(server.stderr_path)
    metrics.append(("ok", 1.0 if ok else 0.0, "bool", "runner"))
    return RepOutcome(Check(ok, reason, details), tuple(metrics))


SPEC = WorkloadSpec(kind="censored", run=run_censored)
