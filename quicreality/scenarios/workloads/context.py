"""What every workload shares: the repetition context, its outcome, logs and key logs.

A workload kind (one module of this package each, dispatched by
:func:`~quicreality.scenarios.workloads.run_rep`) receives a
:class:`RepContext` and returns a :class:`RepOutcome`.  Every process runs through
:meth:`RepContext.start` (argv list, own process group, stdout/stderr into the repetition
directory, killed at the end of the repetition whatever happens).

Helpers that several kinds use live here too: :func:`tail` (the last lines of a log for a
check's details), :func:`merge_client_first` and :func:`finish_keys` (one key log per
repetition, injected into the client-side capture), :func:`serve_command` and
:func:`download_command` (a peer's argv with this repetition's keys and qlog directories).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..capture import Capture, inject_secrets, merge_keylogs, start_capture
from ..catalog import Scenario, Workload
from ..peers import get_peer
from ..peers.base import (
    Command,
    DownloadRequest,
    ServeRequest,
    Unsupported,
    pattern_bytes,
    pattern_sha256,
)
from ..peers.process import PeerFailed, PeerProcess
from ..results import Check
from ..topology import LINK_IF, Topology

__all__ = [
    "IPERF_PORT",
    "QUIC_PORT",
    "TCP_SNAPLEN",
    "Assets",
    "Metric",
    "RepContext",
    "RepOutcome",
    "WorkloadSpec",
    "download_command",
    "finish_keys",
    "merge_client_first",
    "serve_command",
    "tail",
]

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

    def wait(self, proc: PeerProcess, timeout: float, *,
             stop_when: Callable[[], bool] | None = None) -> tuple[int, float]:
        """Wait for ``proc`` with live rate updates; (exit code, seconds).

        ``stop_when`` (checked every 0.1 s) ends the wait early: once it returns True the
        process is stopped and its exit status returned (negative: the signal that ended it).

        Raises:
            PeerFailed: Still running after ``timeout`` (it is stopped first).
        """
        assert proc.proc is not None
        t0 = time.monotonic()
        last = _if_bytes(self._meter_pid, LINK_IF) if self._meter_pid else None
        t_last = t0
        while True:
            rc = proc.poll()  # reads its CPU time before reaping it
            now = time.monotonic()
            if rc is not None:
                return rc, now - t0
            if stop_when is not None and stop_when():
                rc = proc.stop()
                return (rc if rc is not None else -1), time.monotonic() - t0
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
        for i, (host, cap) in enumerate(zip(("client", "server"), self._caps, strict=False)):
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



@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """A workload kind, registered by name in :mod:`quicreality.scenarios.workloads`.

    Attributes:
        kind: The ``kind`` of ``[[workload]]`` tables it runs (see ``catalog.KINDS``).
        run: Runs one repetition in a built topology.  It may raise the peer errors
            (``Unsupported``, ``PeerNotInstalled``, ``PeerFailed``) and
            ``OSError``/``RuntimeError``/``ValueError``: the dispatcher turns them into a failed
            check.
    """

    kind: str
    run: Callable[[RepContext], RepOutcome]


def tail(path: Path, n: int = 15) -> str:
    """The last ``n`` lines of the log at ``path`` ("" if it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


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


def finish_keys(rep_dir: Path) -> Path | None:
    """Merge every endpoint's key log into keys.log (the client's first); inject it into
    client.pcapng."""
    keys = rep_dir / "keys.log"
    logs = sorted((rep_dir / "keys").glob("*.keys"), key=lambda p: (p.stem != "client", p.stem))
    n = merge_client_first(logs, keys)
    out = rep_dir / "client.pcapng"
    inject_secrets(str(rep_dir / "client.pcap"), str(keys), str(out))
    return out if n else None


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
