"""Network-namespace topology: client ⇄ impaired link ⇄ server ⇄ target.

Theory of operation
-------------------
Three namespaces per run, all named ``qr-<run_id>-<host>``::

    qr-<id>-client             qr-<id>-server                 qr-<id>-target
    qrlink 10.99.1.2  ==impaired==  qrlink 10.99.2.2 (+ 10.99.2.3, a preferred address)
                                    qrtgt  10.99.3.1 ---veth--- qrtgt 10.99.3.2

The impaired link is point-to-point (``ip addr add A peer B``) in both
backends, so addresses, interface names and capture points are identical:

* ``userspace``: a persistent TUN ``qrlink`` in the client and in the server
  namespace; the emulator process (:mod:`.emulator`) relays between them and
  applies the model.  txqueuelen is raised to 10000 (the default 500 overflows
  under TCP), MTU 1500.  TUNs have no offloads, so the emulator sees MTU-size
  packets with complete checksums.
* ``netem``: a veth pair ``qrlink``; netem+tbf on each end's egress (client's
  egress = ``to_server``).

The client has no route to the target: the REALITY server relays fallback
traffic itself (from 10.99.3.1).  IPv6 is disabled in our namespaces (no
router solicitations/MLD into the emulator, so packet sequences are
reproducible).  Per namespace ``tcp_rmem``/``tcp_wmem`` max are raised to 32 MiB.
``net.core.rmem_max``/``wmem_max`` are global (they cannot be set inside a
netns); they are raised to :data:`NEED_CORE_MEM_MAX` only if lower and are
left raised afterwards (they only allow larger socket buffers).

Teardown always runs (success, exception, SIGINT, SIGTERM): processes started
through :meth:`Topology.popen` and every process left in our namespaces are
killed (SIGTERM, then SIGKILL), the emulator is stopped (its stats are kept),
and the namespaces are deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .model import Link, link_to_dict
from .netem import qdisc_argvs
from .procutil import kill_pids

__all__ = [
    "ADDRESSES",
    "HOSTS",
    "LINK_IF",
    "NEED_CORE_MEM_MAX",
    "OWNER_DIR",
    "PREFIX",
    "TARGET_IF",
    "Topology",
    "TopologyError",
    "new_run_id",
    "ns_name",
]

Host = Literal["client", "server", "target"]
Backend = Literal["userspace", "netem"]

#: Every namespace, link and process tag of this project starts with this.
PREFIX = "qr-"
HOSTS: tuple[Host, ...] = ("client", "server", "target")
LINK_IF = "qrlink"
TARGET_IF = "qrtgt"
#: Fixed address plan (10.0.0.0/8, only inside our namespaces).
ADDRESSES: dict[str, str] = {
    "client": "10.99.1.2",
    "server": "10.99.2.2",
    #: a second server address across the link, for a preferred address (RFC 9000 §9.6)
    "server_preferred": "10.99.2.3",
    "server_target_side": "10.99.3.1",
    "target": "10.99.3.2",
}
NEED_CORE_MEM_MAX = 16 * 1024 * 1024
#: Owner markers ``qr-<id>.owner`` (pid of the process that built the run).
OWNER_DIR = "/run/quicreality"
TXQUEUELEN = 10000
_TCP_MEM = {"net.ipv4.tcp_rmem": "4096 131072 33554432", "net.ipv4.tcp_wmem": "4096 16384 33554432"}


class TopologyError(RuntimeError):
    """Building or tearing down the topology failed (message has the command)."""


def new_run_id() -> str:
    """A short random run id (6 hex digits)."""
    return secrets.token_hex(3)


def ns_name(run_id: str, host: str) -> str:
    """Namespace name of ``host`` in run ``run_id`` (``qr-<id>-<host>``)."""
    return f"{PREFIX}{run_id}-{host}"


def _run(argv: Sequence[str], *, check: bool = True, timeout: float = 15.0) -> str:
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and r.returncode != 0:
        raise TopologyError(f"{' '.join(argv)} -> exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def _raise_core_mem(need: int = NEED_CORE_MEM_MAX) -> dict[str, Any]:
    """Raise net.core.{r,w}mem_max to ``need`` where lower; return the values now set."""
    out: dict[str, Any] = {}
    for key in ("rmem_max", "wmem_max"):
        path = f"/proc/sys/net/core/{key}"
        with open(path) as f:
            cur = int(f.read().strip())
        if cur < need:
            with open(path, "w") as f:
                f.write(str(need))
            cur = need
        out[f"net.core.{key}"] = cur
    return out


class _Terminated(KeyboardInterrupt):
    """SIGTERM/SIGHUP while a topology is up (raised so teardown runs)."""


@dataclass
class Topology:
    """A built topology; create it with :meth:`create` (a context manager).

    Attributes:
        run_id: Short id; every name is tagged ``qr-<run_id>``.
        link: The configured impairment model.
        backend: ``"userspace"`` or ``"netem"``.
        seed: Emulator seed.
        workdir: Directory for the emulator config/stats (and whatever the caller puts).
        emulator_stats: The emulator's stats JSON, filled in at teardown.
        sysctls: Global sysctl values in force (for the manifest).
    """

    run_id: str
    link: Link
    backend: Backend
    seed: int
    workdir: str
    emulator_stats: dict[str, Any] | None = None
    sysctls: dict[str, Any] = field(default_factory=dict)
    censor: dict[str, Any] | None = None
    _procs: list[subprocess.Popen[Any]] = field(default_factory=list, repr=False)
    _emulator: subprocess.Popen[str] | None = field(default=None, repr=False)
    _created: list[str] = field(default_factory=list, repr=False)

    # ------------------------------------------------------------------ naming

    @property
    def tag(self) -> str:
        """``qr-<run_id>``: the prefix of all our names."""
        return f"{PREFIX}{self.run_id}"

    def ns(self, host: str) -> str:
        """Namespace name of ``host`` (client, server, target)."""
        if host not in HOSTS:
            raise ValueError(f"unknown host {host!r} (hosts: {HOSTS})")
        return ns_name(self.run_id, host)

    @staticmethod
    def addr(host: str) -> str:
        """IPv4 address of ``host`` (see :data:`ADDRESSES`)."""
        return ADDRESSES[host]

    def exec_argv(self, host: str, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped to run inside ``host``'s namespace."""
        return ["ip", "netns", "exec", self.ns(host), *argv]

    def run(self, host: str, argv: Sequence[str], *, timeout: float = 60.0,
            check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in ``host``'s namespace to completion (text output captured)."""
        return subprocess.run(self.exec_argv(host, argv), capture_output=True, text=True,
                              timeout=timeout, check=check)

    def popen(self, host: str, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` in ``host``'s namespace; it is killed at teardown.

        The child gets its own session (so the runner's Ctrl-C does not reach it
        before teardown) and is stopped with SIGTERM, then SIGKILL.
        """
        kw.setdefault("start_new_session", True)
        p = subprocess.Popen(self.exec_argv(host, argv), **kw)
        self._procs.append(p)
        return p

    def info(self) -> dict[str, Any]:
        """Plain-JSON description for the manifest."""
        return {
            "run_id": self.run_id, "backend": self.backend, "seed": self.seed,
            "namespaces": {h: self.ns(h) for h in HOSTS}, "addresses": dict(ADDRESSES),
            "link_interface": LINK_IF, "target_interface": TARGET_IF,
            "link": link_to_dict(self.link), "sysctls": dict(self.sysctls),
            "censor": self.censor,
        }

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    @contextlib.contextmanager
    def create(cls, run_id: str, link: Link, backend: Backend = "userspace", *,
               seed: int = 0, workdir: str | None = None,
               censor: dict[str, Any] | None = None) -> Iterator[Topology]:
        """Build the topology, yield it, and always tear it down.

        Args:
            run_id: Short id (see :func:`new_run_id`); names are ``qr-<run_id>-*``.
            link: The impairment model (validated here).
            backend: ``"userspace"`` (TUN + emulator) or ``"netem"`` (veth + tc).
            seed: Seed of the userspace emulator.
            workdir: Where emulator config/stats go; a temp dir (removed at
                teardown) if None.
            censor: A validated ``[censor]`` table: the emulator runs the censor stage
                (userspace backend only), logging to ``<workdir>/censor.jsonl``.

        Raises:
            TopologyError: If a command fails (teardown has already run).
        """
        link.validate()
        own_dir = workdir is None
        wd = tempfile.mkdtemp(prefix=f"{PREFIX}{run_id}-") if own_dir else workdir
        assert wd is not None
        os.makedirs(wd, exist_ok=True)
        if censor is not None and backend != "userspace":
            raise TopologyError("the censor needs the userspace backend")
        topo = cls(run_id=run_id, link=link, backend=backend, seed=seed, workdir=wd,
                   censor=censor)
        restore = _install_term_handlers()
        try:
            topo._build()
            yield topo
        finally:
            old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            try:
                topo.teardown()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
                restore()
                if own_dir:
                    shutil.rmtree(wd, ignore_errors=True)

    def _build(self) -> None:
        existing = _run(["ip", "netns", "list"], check=False)
        for h in HOSTS:
            if any(line.split()[0] == self.ns(h) for line in existing.splitlines() if line.strip()):
                raise TopologyError(f"namespace {self.ns(h)} already exists (run id reused?)")
        os.makedirs(OWNER_DIR, exist_ok=True)
        with open(self._owner_path, "w") as f:
            f.write(str(os.getpid()))
        self.sysctls = _raise_core_mem()
        for h in HOSTS:
            _run(["ip", "netns", "add", self.ns(h)])
            self._created.append(self.ns(h))
            for key, val in (("net.ipv6.conf.all.disable_ipv6", "1"),
                             ("net.ipv6.conf.default.disable_ipv6", "1"), *_TCP_MEM.items()):
                _run(self.exec_argv(h, ["sysctl", "-q", "-w", f"{key}={val}"]))
            _run(["ip", "-n", self.ns(h), "link", "set", "lo", "up"])
        self.sysctls.update(_TCP_MEM)
        s, t = self.ns("server"), self.ns("target")
        _run(["ip", "link", "add", TARGET_IF, "netns", s, "type", "veth",
              "peer", "name", TARGET_IF, "netns", t])
        _run(["ip", "-n", s, "addr", "add", f"{ADDRESSES['server_target_side']}/24", "dev", TARGET_IF])
        _run(["ip", "-n", t, "addr", "add", f"{ADDRESSES['target']}/24", "dev", TARGET_IF])
        for ns in (s, t):
            _run(["ip", "-n", ns, "link", "set", TARGET_IF, "up"])
        c = self.ns("client")
        if self.backend == "userspace":
            for ns in (c, s):
                _run(["ip", "-n", ns, "tuntap", "add", "dev", LINK_IF, "mode", "tun"])
        elif self.backend == "netem":
            _run(["ip", "link", "add", LINK_IF, "netns", c, "type", "veth",
                  "peer", "name", LINK_IF, "netns", s])
        else:
            raise TopologyError(f"unknown backend {self.backend!r} (userspace | netem)")
        for ns, me, peer in ((c, "client", "server"), (s, "server", "client")):
            _run(["ip", "-n", ns, "link", "set", LINK_IF, "mtu", "1500",
                  "txqueuelen", str(TXQUEUELEN)])
            _run(["ip", "-n", ns, "addr", "add", f"{ADDRESSES[me]}/32",
                  "peer", f"{ADDRESSES[peer]}/32", "dev", LINK_IF])
            _run(["ip", "-n", ns, "link", "set", LINK_IF, "up"])
        preferred = f"{ADDRESSES['server_preferred']}/32"
        _run(["ip", "-n", s, "addr", "add", preferred, "dev", LINK_IF])
        _run(["ip", "-n", c, "route", "add", preferred, "dev", LINK_IF])
        rebind = self.link.rebind
        if rebind is not None and self.backend != "userspace":
            raise TopologyError("link.rebind needs the userspace backend (netem has no NAT stage)")
        if rebind is not None and rebind.kind == "addr":
            for addr in rebind.addresses:  # the server answers the NAT's new client addresses
                _run(["ip", "-n", s, "route", "add", f"{addr}/32", "dev", LINK_IF])
        if self.backend == "netem":
            for host, imp in (("client", self.link.to_server), ("server", self.link.to_client)):
                for argv in qdisc_argvs(LINK_IF, imp):
                    _run(self.exec_argv(host, argv))
        else:
            self._start_emulator()

    def _start_emulator(self) -> None:
        from .emulator.relay import EmulatorConfig

        cfg = EmulatorConfig(tag=self.tag, client_netns=self.ns("client"),
                             server_netns=self.ns("server"), link=self.link, seed=self.seed,
                             ifname=LINK_IF, stats_path=os.path.join(self.workdir, "emulator-stats.json"),
                             extra={"rearm_path": self._rearm_path, **self._censor_extra()})
        cfg_path = os.path.join(self.workdir, "emulator-config.json")
        with open(cfg_path, "w") as f:
            f.write(cfg.to_json())
        err = open(os.path.join(self.workdir, "emulator.stderr"), "w")  # noqa: SIM115 -- closed below
        try:
            self._emulator = subprocess.Popen(
                [sys.executable, "-m", "quicreality.scenarios.emulator", "--config", cfg_path,
                 "--tag", self.tag],
                stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
        finally:
            err.close()
        line = _readline_with_timeout(self._emulator, 10.0)
        if line.strip() != "ready":
            rc = self._emulator.poll()
            with open(os.path.join(self.workdir, "emulator.stderr")) as f:
                msg = f.read().strip().splitlines()[-3:]
            raise TopologyError(f"emulator did not start (exit {rc}): {' | '.join(msg)}")

    @property
    def censor_log(self) -> str | None:
        """The run's ``censor.jsonl`` (written by the emulator), or None without a censor."""
        return os.path.join(self.workdir, "censor.jsonl") if self.censor else None

    def _censor_extra(self) -> dict[str, Any]:
        """Emulator config entries of the censor: its table, log, and the prober's place.

        The prober lives in the server namespace at the server's target-side address and
        compares the server with the target (both inside our namespaces).
        """
        if not self.censor:
            return {}
        return {"censor": self.censor, "censor_log": self.censor_log,
                "prober": {"netns": self.ns("server"), "addr": ADDRESSES["server_target_side"],
                           "target": [ADDRESSES["target"], 443]}}

    @property
    def _owner_path(self) -> str:
        return os.path.join(OWNER_DIR, f"{self.tag}.owner")

    @property
    def emulator_pid(self) -> int | None:
        """PID of the emulator process (userspace backend), or None."""
        return self._emulator.pid if self._emulator is not None else None

    @property
    def _rearm_path(self) -> str:
        return os.path.join(self.workdir, "emulator-rearm.json")

    def rearm(self, seed: int | None = None, *, timeout: float = 3.0) -> dict[str, Any] | None:
        """Re-seed the emulator and restart its blackhole schedule (SIGUSR1).

        Call it after the link check, right before the workload, so the
        workload sees the seed's drop pattern from its first packet.  No-op
        for the netem backend.

        Args:
            seed: If given, the emulator switches to this seed (e.g. one per
                repetition) and acknowledges the re-arm; without it the
                emulator keeps its seed and the call just waits 10 ms.
            timeout: How long to wait for the acknowledgement.

        Returns:
            With ``seed``: the emulator's counters of the period that just ended
            (``{"to_server": {...}, "to_client": {...}}``); otherwise None.

        Raises:
            TopologyError: The emulator did not acknowledge a seeded re-arm.
        """
        if self._emulator is None or self._emulator.poll() is not None:
            return None
        if seed is None:
            self._emulator.send_signal(signal.SIGUSR1)
            time.sleep(0.01)
            return None
        done = self._rearm_path + ".done"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(done)
        with open(self._rearm_path + ".tmp", "w") as f:
            json.dump({"seed": int(seed)}, f)
        os.replace(self._rearm_path + ".tmp", self._rearm_path)
        self._emulator.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(done) as f:
                    ack = json.load(f)
            except (FileNotFoundError, ValueError):
                time.sleep(0.002)
                continue
            os.unlink(done)
            self.seed = int(ack["seed"])
            return dict(ack["period"])
        raise TopologyError(f"emulator did not acknowledge the re-arm to seed {seed} in {timeout}s")

    def teardown(self) -> None:
        """Kill our processes, stop the emulator, delete our namespaces (idempotent)."""
        errors: list[str] = []
        kill_pids([p.pid for p in self._procs if p.poll() is None])
        for p in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=1.0)
        self._procs.clear()
        for ns in list(self._created):
            pids = _run(["ip", "netns", "pids", ns], check=False).split()
            kill_pids([int(x) for x in pids if x.isdigit()])
        if self._emulator is not None:
            em = self._emulator
            if em.poll() is None:
                em.send_signal(signal.SIGTERM)
                try:
                    em.wait(timeout=3.0)
                except subprocess.TimeoutExpired:
                    em.kill()
                    em.wait()
            if em.stdout is not None:
                em.stdout.close()
            path = os.path.join(self.workdir, "emulator-stats.json")
            with contextlib.suppress(OSError, ValueError), open(path) as f:
                self.emulator_stats = json.load(f)
            self._emulator = None
        for ns in list(self._created):
            try:
                _run(["ip", "netns", "del", ns])
                self._created.remove(ns)
            except (TopologyError, subprocess.TimeoutExpired) as e:
                errors.append(str(e))
        if errors:
            raise TopologyError("teardown: " + "; ".join(errors))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._owner_path)


def _readline_with_timeout(p: subprocess.Popen[str], timeout: float) -> str:
    """First stdout line of ``p`` or "" after ``timeout`` s / EOF."""
    import select

    assert p.stdout is not None
    r, _, _ = select.select([p.stdout], [], [], timeout)
    return p.stdout.readline() if r else ""


def _install_term_handlers() -> Any:
    """Turn SIGTERM/SIGHUP into an exception so ``finally`` teardown runs.

    Only possible in the main thread; returns a function restoring the old handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def raise_terminated(signum: int, frame: object) -> None:
        raise _Terminated(f"signal {signum}")

    old = {s: signal.signal(s, raise_terminated) for s in (signal.SIGTERM, signal.SIGHUP)}
    # A process started in the background by a non-interactive shell inherits SIGINT as SIG_IGN
    # (and Python then keeps it ignored): Ctrl-C / SIGINT would not stop the owner of the
    # topology at all.  SIGINT always means "interrupt and clean up" here.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    # An inherited blocked mask would likewise keep the handlers from ever running.
    old_mask = signal.pthread_sigmask(
        signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})

    def restore() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        for s, h in old.items():
            signal.signal(s, h)
    return restore
