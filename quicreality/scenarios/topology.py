"""Network-namespace topology: client ⇄ impaired link ⇄ server ⇄ target.

Theory of operation
-------------------
Three namespaces per run, all named ``qr-<run_id>-<host>``::

    qr-<id>-client             qr-<id>-server                 qr-<id>-target
    qrlink 10.99.1.2  ==impaired==  qrlink 10.99.2.2 (+ 10.99.2.3, a preferred address)
           fd00::1                         fd00::2
                                    qrtgt  10.99.3.1 ---veth--- qrtgt 10.99.3.2
                                           fd00:3::1            fd00:3::2

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
traffic itself (from 10.99.3.1).  IPv6 runs beside IPv4 (:data:`ADDRESSES6`,
ULA fd00::/8) but silently: no link-local addresses, no router solicitations,
no DAD, and the link has no multicast (so no MLD reports), hence nothing of
our own enters the emulator and seeded packet sequences stay reproducible.
Per namespace ``tcp_rmem``/``tcp_wmem`` max are raised to 32 MiB.
``net.core.rmem_max``/``wmem_max`` are global (they cannot be set inside a
netns); they are raised to :data:`NEED_CORE_MEM_MAX` only if lower and are
left raised afterwards (they only allow larger socket buffers).

**Chains** (``link2``: a scenario with a ``[link2]`` table, for the ``chain`` workload) add
a middle namespace and a second impaired link; the client reaches the server only through
the middle, which forwards IPv4 only (so direct TCP crosses both links too)::

    qr-<id>-client          qr-<id>-middle                      qr-<id>-server
    qrlink 10.99.1.2 ==link==> qrlink 10.99.4.1
                               qrlink2 10.99.4.2 ==link2==> qrlink2 10.99.2.2 --veth-- target

Each link has its own emulator (or netem pair); re-arming re-seeds both (link2 with the
seed + 500000).

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
    "ADDRESSES6",
    "CHAIN_HOSTS",
    "HOSTS",
    "LINK2_IF",
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

Host = Literal["client", "middle", "server", "target"]
Backend = Literal["userspace", "netem"]

#: Every namespace, link and process tag of this project starts with this.
PREFIX = "qr-"
HOSTS: tuple[Host, ...] = ("client", "server", "target")
#: The hosts of a chain topology (``link2``).
CHAIN_HOSTS: tuple[Host, ...] = ("client", "middle", "server", "target")
LINK_IF = "qrlink"
#: The second impaired link of a chain (middle ⇄ server).
LINK2_IF = "qrlink2"
#: Seed offset of the second link's emulator.
LINK2_SEED_OFFSET = 500_000
TARGET_IF = "qrtgt"
#: Fixed address plan (10.0.0.0/8, only inside our namespaces).
ADDRESSES: dict[str, str] = {
    "client": "10.99.1.2",
    "server": "10.99.2.2",
    #: a second server address across the link, for a preferred address (RFC 9000 §9.6)
    "server_preferred": "10.99.2.3",
    "server_target_side": "10.99.3.1",
    "target": "10.99.3.2",
    "middle": "10.99.4.1",  # chains: the middle's client-side address
    "middle_server_side": "10.99.4.2",
}
#: The same plan in IPv6 (ULA, RFC 4193; only inside our namespaces).
ADDRESSES6: dict[str, str] = {
    "client": "fd00::1",
    "server": "fd00::2",
    "server_target_side": "fd00:3::1",
    "target": "fd00:3::2",
    "middle": "fd00:4::1",  # chains: addressed on both links, but only IPv4 is forwarded
    "middle_server_side": "fd00:4::2",
}
#: IPv6 on, but nothing sent unasked: no link-local address (addr_gen_mode 1), no router
#: solicitations, no DAD (ip-sysctl.rst). Set before the interfaces exist (``default``).
_IPV6_QUIET = {f"net.ipv6.conf.{scope}.{key}": val for scope in ("all", "default")
               for key, val in (("disable_ipv6", "0"), ("accept_ra", "0"),
                                ("router_solicitations", "0"), ("accept_dad", "0"),
                                ("dad_transmits", "0"), ("addr_gen_mode", "1"))}
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
    link2: Link | None = None
    emulator2_stats: dict[str, Any] | None = None
    _procs: list[subprocess.Popen[Any]] = field(default_factory=list, repr=False)
    _emulator: subprocess.Popen[str] | None = field(default=None, repr=False)
    _emulator2: subprocess.Popen[str] | None = field(default=None, repr=False)
    _created: list[str] = field(default_factory=list, repr=False)

    # ------------------------------------------------------------------ naming

    @property
    def tag(self) -> str:
        """``qr-<run_id>``: the prefix of all our names."""
        return f"{PREFIX}{self.run_id}"

    @property
    def hosts(self) -> tuple[Host, ...]:
        """The hosts of this topology (:data:`CHAIN_HOSTS` with ``link2``)."""
        return CHAIN_HOSTS if self.link2 is not None else HOSTS

    def ns(self, host: str) -> str:
        """Namespace name of ``host`` (client, server, target; middle in a chain)."""
        if host not in self.hosts:
            raise ValueError(f"unknown host {host!r} (hosts: {self.hosts})")
        return ns_name(self.run_id, host)

    @staticmethod
    def addr(host: str, family: int = 4) -> str:
        """IPv4 (or with ``family=6`` IPv6) address of ``host`` (:data:`ADDRESSES`, :data:`ADDRESSES6`)."""
        return ADDRESSES6[host] if family == 6 else ADDRESSES[host]

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
            "namespaces": {h: self.ns(h) for h in self.hosts}, "addresses": dict(ADDRESSES),
            "addresses6": dict(ADDRESSES6),
            "link_interface": LINK_IF, "target_interface": TARGET_IF,
            "link": link_to_dict(self.link), "sysctls": dict(self.sysctls),
            "censor": self.censor,
            **({"link2": link_to_dict(self.link2), "link2_interface": LINK2_IF}
               if self.link2 is not None else {}),
        }

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    @contextlib.contextmanager
    def create(cls, run_id: str, link: Link, backend: Backend = "userspace", *,
               seed: int = 0, workdir: str | None = None,
               censor: dict[str, Any] | None = None,
               link2: Link | None = None) -> Iterator[Topology]:
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
            link2: A second impaired link (middle ⇄ server): the chain topology.

        Raises:
            TopologyError: If a command fails (teardown has already run).
        """
        link.validate()
        if link2 is not None:
            link2.validate()
            if censor is not None:
                raise TopologyError("a chain topology (link2) has no censor stage")
        own_dir = workdir is None
        wd = tempfile.mkdtemp(prefix=f"{PREFIX}{run_id}-") if own_dir else workdir
        assert wd is not None
        os.makedirs(wd, exist_ok=True)
        if censor is not None and backend != "userspace":
            raise TopologyError("the censor needs the userspace backend")
        topo = cls(run_id=run_id, link=link, backend=backend, seed=seed, workdir=wd,
                   censor=censor, link2=link2)
        restore = install_term_handlers()
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
        for h in self.hosts:
            if any(line.split()[0] == self.ns(h) for line in existing.splitlines() if line.strip()):
                raise TopologyError(f"namespace {self.ns(h)} already exists (run id reused?)")
        os.makedirs(OWNER_DIR, exist_ok=True)
        with open(self._owner_path, "w") as f:
            f.write(str(os.getpid()))
        self.sysctls = _raise_core_mem()
        for h in self.hosts:
            _run(["ip", "netns", "add", self.ns(h)])
            self._created.append(self.ns(h))
            for key, val in (*_IPV6_QUIET.items(), *_TCP_MEM.items()):
                _run(self.exec_argv(h, ["sysctl", "-q", "-w", f"{key}={val}"]))
            _run(["ip", "-n", self.ns(h), "link", "set", "lo", "up"])
        self.sysctls.update(_TCP_MEM)
        s, t = self.ns("server"), self.ns("target")
        _run(["ip", "link", "add", TARGET_IF, "netns", s, "type", "veth",
              "peer", "name", TARGET_IF, "netns", t])
        _run(["ip", "-n", s, "addr", "add", f"{ADDRESSES['server_target_side']}/24", "dev", TARGET_IF])
        _run(["ip", "-n", t, "addr", "add", f"{ADDRESSES['target']}/24", "dev", TARGET_IF])
        for ns, host in ((s, "server_target_side"), (t, "target")):
            _run(["ip", "-n", ns, "link", "set", TARGET_IF, "multicast", "off"])
            _run(["ip", "-n", ns, "-6", "addr", "add", f"{ADDRESSES6[host]}/64", "dev", TARGET_IF,
                  "nodad"])
            _run(["ip", "-n", ns, "link", "set", TARGET_IF, "up"])
        if self.backend not in ("userspace", "netem"):
            raise TopologyError(f"unknown backend {self.backend!r} (userspace | netem)")
        rebind = self.link.rebind
        if rebind is not None and self.backend != "userspace":
            raise TopologyError("link.rebind needs the userspace backend (netem has no NAT stage)")
        if self.link2 is None:
            self._build_link(LINK_IF, ("client", "client"), ("server", "server"), self.link)
            self._add_migration_addresses(self.ns("client"), s)
            return
        if rebind is not None and rebind.kind == "addr":
            raise TopologyError("link.rebind kind = 'addr' is not supported on a chain")
        m = self.ns("middle")
        self._build_link(LINK_IF, ("client", "client"), ("middle", "middle"), self.link)
        self._build_link(LINK2_IF, ("middle", "middle_server_side"), ("server", "server"),
                         self.link2)
        _run(self.exec_argv("middle", ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]))
        self.sysctls[f"{m}: net.ipv4.ip_forward"] = 1
        # client and server reach each other (and only each other) through the middle
        _run(["ip", "-n", self.ns("client"), "route", "add", f"{ADDRESSES['server']}/32",
              "via", ADDRESSES["middle"], "dev", LINK_IF])
        _run(["ip", "-n", s, "route", "add", f"{ADDRESSES['client']}/32",
              "via", ADDRESSES["middle_server_side"], "dev", LINK2_IF])

    def _add_migration_addresses(self, c: str, s: str) -> None:
        """The server's preferred address across the link (routed from the client), and routes
        back to the client addresses an ``addr`` rebinding gives the client (RFC 9000 §9)."""
        preferred = f"{ADDRESSES['server_preferred']}/32"
        _run(["ip", "-n", s, "addr", "add", preferred, "dev", LINK_IF])
        _run(["ip", "-n", c, "route", "add", preferred, "dev", LINK_IF])
        rebind = self.link.rebind
        if rebind is not None and rebind.kind == "addr":
            for addr in rebind.addresses:  # the server answers the NAT's new client addresses
                _run(["ip", "-n", s, "route", "add", f"{addr}/32", "dev", LINK_IF])

    def _build_link(self, ifname: str, a: tuple[Host, str], b: tuple[Host, str],
                    link: Link) -> None:
        """One point-to-point impaired link ``ifname`` between hosts ``a`` and ``b`` (each
        ``(host, address key)``): TUNs and an emulator, or a veth pair with netem."""
        (ha, ka), (hb, kb) = a, b
        na, nb = self.ns(ha), self.ns(hb)
        if self.backend == "userspace":
            for ns in (na, nb):
                _run(["ip", "-n", ns, "tuntap", "add", "dev", ifname, "mode", "tun"])
        else:
            _run(["ip", "link", "add", ifname, "netns", na, "type", "veth",
                  "peer", "name", ifname, "netns", nb])
        for ns, me, peer in ((na, ka, kb), (nb, kb, ka)):
            _run(["ip", "-n", ns, "link", "set", ifname, "mtu", "1500",
                  "txqueuelen", str(TXQUEUELEN)])
            _run(["ip", "-n", ns, "addr", "add", f"{ADDRESSES[me]}/32",
                  "peer", f"{ADDRESSES[peer]}/32", "dev", ifname])
            _run(["ip", "-n", ns, "link", "set", ifname, "multicast", "off"])
            _run(["ip", "-n", ns, "-6", "addr", "add", f"{ADDRESSES6[me]}/128",
                  "peer", f"{ADDRESSES6[peer]}/128", "dev", ifname, "nodad"])
            _run(["ip", "-n", ns, "link", "set", ifname, "up"])
            # the kernel routes the local /128 of an IPv6 "peer" address, not the peer's
            _run(["ip", "-n", ns, "-6", "route", "replace", f"{ADDRESSES6[peer]}/128", "dev", ifname])
        if self.backend == "netem":
            for host, imp in ((ha, link.to_server), (hb, link.to_client)):
                for argv in qdisc_argvs(ifname, imp):
                    _run(self.exec_argv(host, argv))
        elif ifname == LINK_IF:
            self._emulator = self._start_emulator(na, nb, link, ifname, "emulator", self.seed)
        else:
            self._emulator2 = self._start_emulator(na, nb, link, ifname, "emulator2",
                                                   self.seed + LINK2_SEED_OFFSET)

    def _start_emulator(self, client_ns: str, server_ns: str, link: Link, ifname: str,
                        name: str, seed: int) -> subprocess.Popen[str]:
        """Start one emulator (``name``: its file prefix in the workdir) and wait for it."""
        from .emulator.relay import EmulatorConfig

        first = name == "emulator"
        cfg = EmulatorConfig(tag=self.tag, client_netns=client_ns, server_netns=server_ns,
                             link=link, seed=seed, ifname=ifname,
                             stats_path=os.path.join(self.workdir, f"{name}-stats.json"),
                             extra={"rearm_path": self._rearm(name),
                                    **(self._censor_extra() if first else {})})
        cfg_path = os.path.join(self.workdir, f"{name}-config.json")
        with open(cfg_path, "w") as f:
            f.write(cfg.to_json())
        err = open(os.path.join(self.workdir, f"{name}.stderr"), "w")  # noqa: SIM115 -- closed below
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "quicreality.scenarios.emulator", "--config", cfg_path,
                 "--tag", self.tag],
                stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
        finally:
            err.close()
        line = _readline_with_timeout(proc, 10.0)
        if line.strip() != "ready":
            rc = proc.poll()
            with open(os.path.join(self.workdir, f"{name}.stderr")) as f:
                msg = f.read().strip().splitlines()[-3:]
            raise TopologyError(f"{name} did not start (exit {rc}): {' | '.join(msg)}")
        return proc

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
        return self._rearm("emulator")

    def _rearm(self, name: str) -> str:
        return os.path.join(self.workdir, f"{name}-rearm.json")

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
        period = self._rearm_one(self._emulator, "emulator", seed, timeout)
        if period is None or seed is None:
            return period
        self.seed = int(seed)
        second = self._rearm_one(self._emulator2, "emulator2", seed + LINK2_SEED_OFFSET, timeout)
        if second is not None:
            period["link2"] = second  # the chain's second link, counted the same way
        return period

    def _rearm_one(self, em: subprocess.Popen[str] | None, name: str, seed: int | None,
                   timeout: float) -> dict[str, Any] | None:
        if em is None or em.poll() is not None:
            return None
        if seed is None:
            em.send_signal(signal.SIGUSR1)
            time.sleep(0.01)
            return None
        path = self._rearm(name)
        done = path + ".done"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(done)
        with open(path + ".tmp", "w") as f:
            json.dump({"seed": int(seed)}, f)
        os.replace(path + ".tmp", path)
        em.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(done) as f:
                    ack = json.load(f)
            except (FileNotFoundError, ValueError):
                time.sleep(0.002)
                continue
            os.unlink(done)
            return dict(ack["period"])
        raise TopologyError(f"{name} did not acknowledge the re-arm to seed {seed} in {timeout}s")

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
            self.emulator_stats = self._stop_emulator(self._emulator, "emulator")
            self._emulator = None
        if self._emulator2 is not None:
            self.emulator2_stats = self._stop_emulator(self._emulator2, "emulator2")
            self._emulator2 = None
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


    def _stop_emulator(self, em: subprocess.Popen[str], name: str) -> dict[str, Any] | None:
        """SIGTERM (then SIGKILL) one emulator; its stats JSON."""
        if em.poll() is None:
            em.send_signal(signal.SIGTERM)
            try:
                em.wait(timeout=3.0)
            except subprocess.TimeoutExpired:
                em.kill()
                em.wait()
        if em.stdout is not None:
            em.stdout.close()
        stats: dict[str, Any] | None = None
        with contextlib.suppress(OSError, ValueError), open(
                os.path.join(self.workdir, f"{name}-stats.json")) as f:
            stats = json.load(f)
        return stats


def _readline_with_timeout(p: subprocess.Popen[str], timeout: float) -> str:
    """First stdout line of ``p`` or "" after ``timeout`` s / EOF."""
    import select

    assert p.stdout is not None
    r, _, _ = select.select([p.stdout], [], [], timeout)
    return p.stdout.readline() if r else ""


def install_term_handlers() -> Any:
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
