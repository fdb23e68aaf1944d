"""Run one repetition of a workload inside a built topology.

Theory of operation
-------------------
The runner (:mod:`.runner`) owns the topology and the loop over workloads and
repetitions; for each repetition it builds a :class:`RepContext` and calls
:func:`run_rep`, which dispatches on :attr:`Workload.kind`:

* ``download``: captures on both sides of the impaired link, the server peer
  in the server namespace, the client peer in the client namespace fetching
  one file; then the file's sha256, keys merged and injected, wire metrics
  (:mod:`.wire`), qlog metrics (:mod:`.qlogsum`).
* ``iperf3``: TCP direct between the namespaces (headers-only captures), in
  :mod:`.tcp_workloads`.
* ``fallback`` / ``relay-iperf3``: REALITY paths, in :mod:`.reality_workloads`.

Every process runs through :meth:`RepContext.start` (argv list, own process
group, stdout/stderr into the repetition directory, killed at the end of the
repetition whatever happens).  Anything that goes wrong inside a repetition
(a peer that crashes, hangs past its timeout, is unsupported or missing, a
wrong file) becomes a failed :class:`~.results.Check` with the reason and the
stderr kept; only Ctrl-C and SIGTERM propagate.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .capture import Capture, inject_secrets, merge_keylogs, start_capture
from .catalog import Scenario, Workload
from .peers import get_peer
from .peers.base import (
    Command,
    DownloadRequest,
    ServeRequest,
    Unsupported,
    pattern_bytes,
    pattern_sha256,
    sha256_file,
    url_for,
)
from .peers.paths import PeerNotInstalled
from .peers.process import PeerFailed, PeerProcess
from .qlogsum import QlogSummary, summarise_qlog
from .results import Check
from .topology import ADDRESSES, LINK_IF, Topology
from .wire import packets_by_source, quic_wire

__all__ = ["Assets", "Metric", "RepContext", "RepOutcome", "run_rep"]

QUIC_PORT = 443
IPERF_PORT = 5201
#: Capture snap length for TCP workloads (headers are enough; payload is iperf3 filler).
TCP_SNAPLEN = 128

#: (metric, value, unit, source)
Metric = tuple[str, float, str, str]


@dataclass
class Assets:
    """Run-wide files: served files, test PKI, scratch space (a temp dir, removed at the end).

    Attributes:
        dir: Scratch directory.
        www: Served directory (``<size>.bin`` files with the ``/bytes/N`` pattern).
        cert: Server leaf certificate (SANs include the namespace addresses).
        key: Its key.
        ca: CA that clients verify with.
        features: What our stack offers in this checkout (``reality``, ``relay``).
        reality: Run-wide REALITY material (keys, short id), once generated.
    """

    dir: Path
    www: Path
    cert: Path
    key: Path
    ca: Path
    features: frozenset[str] = frozenset()
    reality: dict[str, Any] = field(default_factory=dict)

    def file_for(self, size: int) -> tuple[str, str]:
        """(file name, sha256) of a served file of ``size`` bytes (created on first use)."""
        name = f"{size}.bin"
        path = self.www / name
        if not path.exists():
            chunk = 1 << 20
            with open(path, "wb") as f:
                f.writelines(pattern_bytes(min(chunk, size - off), off) for off in range(0, size, chunk))
        return name, pattern_sha256(size)


@dataclass(frozen=True, slots=True)
class RepOutcome:
    """What one repetition produced: its verdict and its measurements."""

    check: Check
    metrics: tuple[Metric, ...] = ()


def _if_bytes(pid: int, ifname: str) -> tuple[int, int] | None:
    """(rx_bytes, tx_bytes) of ``ifname`` in the network namespace of ``pid``."""
    try:
        text = Path(f"/proc/{pid}/net/dev").read_text()
    except OSError:
        return None
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        if name.strip() == ifname:
            cols = rest.split()
            return int(cols[0]), int(cols[8])
    return None


@dataclass
class RepContext:
    """One repetition: where it writes, what it may use, and its processes.

    Attributes:
        topo: The built topology.
        scenario: The (possibly quickened) scenario.
        workload: The workload.
        rep: Repetition number (1-based).
        dir: The repetition directory (created).
        assets: Run-wide files.
        on_rate: Called about once a second with the current link rate in Mbit/s.
        commands: Every command started (for the manifest), filled as they start.
    """

    topo: Topology
    scenario: Scenario
    workload: Workload
    rep: int
    dir: Path
    assets: Assets
    on_rate: Callable[[float], None] = lambda r: None
    commands: list[dict[str, Any]] = field(default_factory=list)
    _procs: list[PeerProcess] = field(default_factory=list)
    _caps: list[Capture] = field(default_factory=list)
    _meter_pid: int | None = None
    capture_counts: dict[str, dict[str, int | None]] = field(default_factory=dict)

    # -------------------------------------------------------------- processes

    def start(self, cmd: Command, host: str, name: str, *,
              env: dict[str, str] | None = None) -> PeerProcess:
        """Start ``cmd`` inside ``host``'s namespace; logs go to ``<dir>/<name>.std{out,err}``."""
        full_env = dict(cmd.env)
        for k, v in (env or {}).items():
            full_env.setdefault(k, v)
        wrapped = Command(argv=tuple(self.topo.exec_argv(host, cmd.argv)), env=full_env,
                          cwd=cmd.cwd, make_dirs=cmd.make_dirs)
        self.commands.append({"name": name, "host": host, "argv": list(cmd.argv),
                              "env": full_env, "cwd": str(cmd.cwd) if cmd.cwd else None,
                              "netns": self.topo.ns(host)})
        p = PeerProcess(wrapped, name=name, log_dir=self.dir)
        self._procs.append(p)
        return p.start()

    def tls_env(self, role: str) -> dict[str, str]:
        """``SSLKEYLOGFILE`` and ``QLOGDIR`` for an endpoint of ``role`` (dirs created)."""
        q = self.dir / "qlog" / role
        q.mkdir(parents=True, exist_ok=True)
        (self.dir / "keys").mkdir(exist_ok=True)
        return {"SSLKEYLOGFILE": str(self.dir / "keys" / f"{role}.keys"), "QLOGDIR": str(q)}

    def wait(self, proc: PeerProcess, timeout: float) -> tuple[int, float]:
        """Wait for ``proc`` with live rate updates; (exit code, seconds).

        Raises:
            PeerFailed: Still running after ``timeout`` (it is stopped first).
        """
        assert proc.proc is not None
        t0 = time.monotonic()
        last = _if_bytes(self._meter_pid, LINK_IF) if self._meter_pid else None
        t_last = t0
        while True:
            rc = proc.proc.poll()
            now = time.monotonic()
            if rc is not None:
                return rc, now - t0
            if now - t0 > timeout:
                proc.stop()
                raise PeerFailed(f"{proc.name} hung: still running after {timeout:.0f}s "
                                 f"(stopped); stderr kept in {proc.stderr_path.name}")
            if self._meter_pid and now - t_last >= 1.0:
                cur = _if_bytes(self._meter_pid, LINK_IF)
                if cur is not None and last is not None:
                    d = max(cur[0] - last[0], cur[1] - last[1])
                    self.on_rate(d * 8 / (now - t_last) / 1e6)
                last, t_last = cur, now
            time.sleep(0.1)

    def start_captures(self, snaplen: int = 0) -> None:
        """tcpdump on ``qrlink`` in the client and the server namespace."""
        for host in ("client", "server"):
            out = self.dir / f"{host}.pcap"
            cap = start_capture(self.topo.exec_argv(host, []), LINK_IF, str(out), snaplen=snaplen)
            self._caps.append(cap)
            self.commands.append({"name": f"capture-{host}", "host": host, "argv": cap.argv})
        self._meter_pid = self._caps[0].proc.pid

    def stop_captures(self) -> dict[str, dict[str, int | None]]:
        """Stop both captures (one settle delay for both); tcpdump's counts per side."""
        out: dict[str, dict[str, int | None]] = {}
        for i, (host, cap) in enumerate(zip(("client", "server"), self._caps)):
            cap.stop(settle_s=0.5 if i == 0 else 0.0)
            out[host] = {"captured": cap.packets, "dropped_by_kernel": cap.dropped}
        self._caps.clear()
        self.capture_counts = out
        return out

    def stop_processes(self) -> None:
        """Stop every peer of this repetition, newest first (SIGTERM lets them flush qlogs)."""
        for p in reversed(self._procs):
            with contextlib.suppress(Exception):
                p.stop(grace=2.0)
        self._procs.clear()

    def close(self) -> None:
        """Stop every process and capture of this repetition (idempotent)."""
        self.stop_processes()
        for cap in self._caps:
            with contextlib.suppress(Exception):
                cap.stop(settle_s=0.0, timeout=3.0)
        self._caps.clear()


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _qlogs(d: Path) -> list[QlogSummary]:
    out = []
    for role in ("client", "server"):  # qlog/<role>/: the runner knows who wrote it
        for f in sorted((d / role).glob("*")) if (d / role).is_dir() else ():
            if f.is_file() and f.suffix in (".qlog", ".sqlog"):
                with contextlib.suppress(Exception):
                    out.append(summarise_qlog(f, role))
    return out


def _pick(summaries: list[QlogSummary], vantage: str) -> QlogSummary | None:
    """The summary of ``vantage`` with the most packets (the data connection)."""
    cands = [s for s in summaries if s.vantage == vantage]
    return max(cands, key=lambda s: s.packets_sent + s.packets_received) if cands else None


def qlog_metrics(rep_dir: Path, sender: str) -> tuple[list[Metric], dict[str, Any]]:
    """RTT and loss numbers from the qlogs; the data sender's view is preferred."""
    sums = _qlogs(rep_dir / "qlog")
    other = "client" if sender == "server" else "server"
    snd, rcv = _pick(sums, sender), _pick(sums, other)
    m: list[Metric] = []
    rtt_src = snd if snd is not None and snd.rtt_median_ms is not None else rcv
    if rtt_src is not None and rtt_src.rtt_median_ms is not None:
        m.append(("rtt_median_ms", rtt_src.rtt_median_ms, "ms", "qlog"))
    if rtt_src is not None and rtt_src.min_rtt_ms is not None:
        m.append(("rtt_min_ms", float(rtt_src.min_rtt_ms), "ms", "qlog"))
    if snd is not None:
        m.append(("packets_lost", float(snd.packets_lost), "packets", "qlog"))
        m.append(("packets_sent", float(snd.packets_sent), "packets", "qlog"))
    details = {"qlog_files": [s.to_dict() for s in sums],
               "rtt_from": rtt_src.vantage if rtt_src is not None else None}
    return m, details


def link_loss_metrics(rep_dir: Path, flow: str, capture_counts: dict[str, dict[str, int | None]]
                      ) -> tuple[list[Metric], dict[str, Any]]:
    """Packets of the workload's ``flow`` (a display filter such as ``udp.port == 443``) that
    entered the impaired link on one side and did not come out on the other.

    Counting is only right if neither tcpdump dropped packets: otherwise no metric is
    emitted (the emulator's own drop counters are always recorded by the runner).
    """
    dropped = {h: (c or {}).get("dropped_by_kernel") for h, c in capture_counts.items()}
    if any(dropped.values()):
        return [], {"flow": flow, "skipped": f"tcpdump dropped packets {dropped}: capture "
                                             "counts would misstate the link's losses"}
    c, s = ADDRESSES["client"], ADDRESSES["server"]
    at_client = packets_by_source(str(rep_dir / "client.pcap"), (c, s), flow)
    at_server = packets_by_source(str(rep_dir / "server.pcap"), (c, s), flow)
    lost_tc = at_server[s] - at_client[s]
    lost_ts = at_client[c] - at_server[c]
    m: list[Metric] = [("link_lost_to_client", float(lost_tc), "packets", "wire"),
                       ("link_lost_to_server", float(lost_ts), "packets", "wire")]
    return m, {"flow": flow, "packets_at_client_side": at_client,
               "packets_at_server_side": at_server}


def merge_client_first(paths: list[Path], out: Path) -> int:
    """Merge NSS key logs, keeping the first secret per (label, client random).

    REALITY mirrors a client's first datagrams to the target, which answers the same
    ClientHello with its own key share: the target's log then holds *different* secrets for
    the client's random, and Wireshark picks one of the two. The client knows the secrets of
    the connection it actually made, so its log goes first and conflicting lines are dropped.
    Returns the number of lines written.
    """
    tmp = out.with_suffix(".all")
    merge_keylogs([str(p) for p in paths], str(tmp))
    seen: set[tuple[str, str]] = set()
    lines = []
    for line in tmp.read_text().splitlines():
        label, rnd, _ = line.split(" ", 2)
        if (label, rnd.lower()) in seen:
            continue
        seen.add((label, rnd.lower()))
        lines.append(line)
    tmp.unlink()
    out.write_text("".join(f"{x}\n" for x in lines))
    return len(lines)


def _finish_keys(rep_dir: Path) -> Path | None:
    """Merge every endpoint's key log into keys.log (the client's first); inject it into
    client.pcapng."""
    keys = rep_dir / "keys.log"
    logs = sorted((rep_dir / "keys").glob("*.keys"), key=lambda p: (p.stem != "client", p.stem))
    n = merge_client_first(logs, keys)
    out = rep_dir / "client.pcapng"
    inject_secrets(str(rep_dir / "client.pcap"), str(keys), str(out))
    return out if n else None


# --------------------------------------------------------------------------- download


def serve_command(peer: str, ctx: RepContext, *, host: str, www: Path, role: str = "server",
                  congestion: str | None = None) -> Command:
    """The server argv of ``peer`` for this repetition (keys/qlog into the rep dir)."""
    spec = get_peer(peer)
    if spec.serve is None:
        raise Unsupported(f"{peer} has no server")
    env = ctx.tls_env(role)
    req = ServeRequest(www=www, port=QUIC_PORT, cert=ctx.assets.cert, key=ctx.assets.key,
                       host=host, qlog_dir=Path(env["QLOGDIR"]), keylog=Path(env["SSLKEYLOGFILE"]),
                       congestion=congestion)
    return spec.serve(req)


def download_command(peer: str, ctx: RepContext, url: str, out_dir: Path,
                     timeout: float, *, verify: bool = True) -> tuple[Command, DownloadRequest]:
    """The client argv of ``peer`` fetching ``url`` into ``out_dir``.

    ``verify=False`` gives neither ``--ca`` nor ``--insecure`` (REALITY verifies the server
    through its own HMAC certificate check).
    """
    spec = get_peer(peer)
    if spec.download is None:
        raise Unsupported(f"{peer} has no client")
    env = ctx.tls_env("client")
    req = DownloadRequest(urls=(url,), out_dir=out_dir, ca=ctx.assets.ca if verify else None,
                          qlog_dir=Path(env["QLOGDIR"]), keylog=Path(env["SSLKEYLOGFILE"]),
                          timeout=timeout)
    return spec.download(req), req


def run_download(ctx: RepContext) -> RepOutcome:
    """HTTP/3 GET of one file: client peer ← server peer over the impaired link."""
    from .reality_workloads import reality_client_args, start_reality_server

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
                      f"{_tail(server.stderr_path, 1) or 'empty'}); then {reason}")
        return RepOutcome(Check(False, reason, {
            **details, "server_exit": server_rc, "client_stderr_tail": _tail(client.stderr_path),
            "server_stderr_tail": _tail(server.stderr_path)}))
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
    if res is not None and res.secs and res.bytes:
        metrics.append(("goodput_reported", res.bytes * 8 / res.secs / 1e6, "Mbit/s", "peer"))
    pcapng = _finish_keys(ctx.dir)
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
        problems.append(f"client exit {rc}: {_tail(client.stderr_path, 3) or 'no stderr'}")
    if got_sha != sha:
        problems.append(f"body {'missing' if got_sha is None else 'differs'} "
                        f"({got_bytes} of {w.size_bytes} bytes)")
    if server_rc is not None:
        problems.append(f"server crashed (exit {server_rc}, stderr kept in server.stderr: "
                        f"{_tail(server.stderr_path, 1) or 'empty'})")
    if wire.goodput_mbit is None:
        problems.append("no server 1-RTT payload packets in the client-side capture")
    elif w.min_goodput_mbit is not None and wire.goodput_mbit < w.min_goodput_mbit:
        problems.append(f"goodput {wire.goodput_mbit:.2f} < {w.min_goodput_mbit} Mbit/s")
    ok = not problems
    metrics.append(("ok", 1.0 if ok else 0.0, "bool", "runner"))
    reason = (f"{w.size_bytes} bytes sha256 ok, {wire.goodput_mbit:.2f} Mbit/s on the wire"
              if ok and wire.goodput_mbit is not None else "; ".join(problems))
    if not ok:
        details["client_stderr_tail"] = _tail(client.stderr_path)
    return RepOutcome(Check(ok, reason, details), tuple(metrics))


# --------------------------------------------------------------------------- dispatch


def run_rep(ctx: RepContext) -> RepOutcome:
    """Run one repetition; every failure inside becomes a failed check (Ctrl-C propagates)."""
    from .reality_workloads import run_fallback, run_relay_iperf3
    from .tcp_workloads import run_iperf3

    kinds: dict[str, Callable[[RepContext], RepOutcome]] = {
        "download": run_download, "iperf3": run_iperf3, "fallback": run_fallback,
        "relay-iperf3": run_relay_iperf3}
    try:
        return kinds[ctx.workload.kind](ctx)
    except Unsupported as e:
        return RepOutcome(Check(False, f"unsupported: {e}", {"unsupported": True}))
    except PeerNotInstalled as e:
        return RepOutcome(Check(False, str(e), {"not_installed": e.name}))
    except PeerFailed as e:
        lines = str(e).splitlines()
        return RepOutcome(Check(False, lines[0], {"peer": "\n".join(lines[1:])}))
    except (OSError, RuntimeError, ValueError) as e:
        return RepOutcome(Check(False, f"{type(e).__name__}: {e}", {}))
    finally:
        ctx.close()
