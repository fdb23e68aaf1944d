"""I/O loop of the userspace emulator: a TUN relay between two namespaces.

Theory of operation
-------------------
The topology creates a persistent TUN device (``ip tuntap add mode tun``)
named ``ifname`` in the client namespace and one in the server namespace and
configures their addresses.  This process enters each namespace with
``setns(2)`` (:func:`..nsutil.in_netns`), attaches to the TUN
(``TUNSETIFF``), and returns to its own namespace; the file descriptors keep
working.  It then loops:

    select([tun_client, tun_server, signal pipe], timeout = next release - now)
    read a batch from each readable TUN -> DirectionCore.submit(pkt, now)
    release every due packet -> os.write(other TUN, pkt)

``select`` takes µs timeouts and ``PR_SET_TIMERSLACK`` is set to 1 µs, so
releases are accurate to well under a millisecond.  Signals: SIGTERM/SIGINT
stop the loop (stats JSON written, exit 0); SIGUSR1 re-arms: every direction
is re-seeded, its Gilbert-Elliott state, queue and blackhole origin reset,
and the counters so far saved under ``"before_rearm"`` and zeroed.  If the
config's ``extra["rearm_path"]`` file holds ``{"seed": N}`` at that moment,
N becomes the seed and ``<rearm_path>.done`` receives the counters of the
period that ended (the runner's per-repetition link counters).  The
runner re-arms after its link check so the workload sees the seed's pattern
from packet one.

With ``extra["censor"]`` (a ``[censor]`` table) every packet read from a TUN first passes the
censor stage (:mod:`.censor_stage`): client -> server packets are inspected, both directions
drop blocked flows, decisions go to ``extra["censor_log"]``, and a re-arm resets the censor.

With ``link.rebind`` the rebinding stage (:mod:`.rebind_stage`) is a NAT in front of the
client: client -> server packets are translated before the censor and the link, server ->
client packets after the censor; a re-arm restarts its schedule.

The process prints ``ready`` on stdout once both TUNs are attached.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import resource
import select
import signal
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from ..model import Link, link_to_dict, load_link
from ..nsutil import in_netns
from ..procutil import die_with_parent
from .core import DirectionCore
from .rebind_stage import RebindStage

__all__ = ["EmulatorConfig", "attach_tun", "main", "run_emulator"]

_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_PR_SET_TIMERSLACK = 29


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Everything the emulator process needs (serialised as JSON for ``--config``).

    Attributes:
        tag: Project tag of the run (``qr-<id>``); it appears on the command line so
            ``clean`` can find a leftover emulator.
        client_netns: Namespace holding the client-side TUN (to_server ingress).
        server_netns: Namespace holding the server-side TUN (to_client ingress).
        link: The impairment model.
        seed: Run seed.
        ifname: TUN device name in both namespaces.
        mtu: Largest packet read from a TUN.
        stats_path: Where to write the stats JSON on exit (None: stdout only).
        batch: Maximum packets read from one TUN per loop iteration.
        nice: Scheduling priority set at start (negative: ahead of the endpoints).
    """

    tag: str
    client_netns: str
    server_netns: str
    link: Link
    seed: int = 0
    ifname: str = "qrlink"
    mtu: int = 1500
    stats_path: str | None = None
    batch: int = 64
    nice: int = -10
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """JSON text for ``--config``."""
        return json.dumps({
            "tag": self.tag, "client_netns": self.client_netns,
            "server_netns": self.server_netns, "link": link_to_dict(self.link),
            "seed": self.seed, "ifname": self.ifname, "mtu": self.mtu,
            "stats_path": self.stats_path, "batch": self.batch, "nice": self.nice, "extra": self.extra,
        }, indent=1)

    @classmethod
    def from_json(cls, text: str) -> EmulatorConfig:
        """Parse :meth:`to_json` output (the link is re-validated)."""
        d = json.loads(text)
        d["link"] = load_link(d["link"])
        return cls(**d)


_libc = ctypes.CDLL(None, use_errno=True)


def attach_tun(netns: str, ifname: str) -> int:
    """Open TUN ``ifname`` inside ``netns`` and return a non-blocking fd.

    The calling thread returns to its original namespace afterwards; the fd
    keeps working there.
    """
    with in_netns(netns):
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            ifr = struct.pack("16sH22x", ifname.encode(), _IFF_TUN | _IFF_NO_PI)
            fcntl.ioctl(fd, _TUNSETIFF, ifr)
        except OSError:
            os.close(fd)
            raise
    return fd


def _cpu_s() -> tuple[float, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime


def run_emulator(cfg: EmulatorConfig) -> dict[str, Any]:
    """Attach both TUNs, relay until SIGTERM/SIGINT, and return the stats.

    The stats are also written to ``cfg.stats_path`` (if set) on exit.
    """
    _libc.prctl(_PR_SET_TIMERSLACK, 1000, 0, 0, 0)  # 1 µs timer slack
    if cfg.nice:
        try:  # the link should not wait behind the endpoints for a core
            os.setpriority(os.PRIO_PROCESS, 0, cfg.nice)
        except OSError:
            pass
    fd_c = attach_tun(cfg.client_netns, cfg.ifname)
    fd_s = attach_tun(cfg.server_netns, cfg.ifname)
    now = time.monotonic()
    stage = _censor_stage(cfg, now)
    nat = RebindStage(cfg.link.rebind, cfg.seed, now) if cfg.link.rebind is not None else None
    to_server = DirectionCore(cfg.link.to_server, cfg.seed, "to_server", origin=now)
    to_client = DirectionCore(cfg.link.to_client, cfg.seed, "to_client", origin=now)

    sig_r, sig_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    flags = {"stop": False, "rearm": 0}

    def on_stop(signum: int, frame: object) -> None:
        flags["stop"] = True

    def on_rearm(signum: int, frame: object) -> None:
        flags["rearm"] += 1

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGUSR1, on_rearm)
    signal.set_wakeup_fd(sig_w, warn_on_full_buffer=False)

    stats: dict[str, Any] = {"tag": cfg.tag, "seed": cfg.seed, "link": link_to_dict(cfg.link),
                             "rearms": 0}
    write_errors = {"to_server": 0, "to_client": 0}

    def writer(fd: int, key: str) -> Any:
        wr = os.write

        def write(pkt: bytes) -> None:
            try:
                wr(fd, pkt)
            except OSError:
                write_errors[key] += 1
        return write

    write_s = writer(fd_s, "to_server")
    write_c = writer(fd_c, "to_client")
    rlist = [fd_c, fd_s, sig_r]
    bufsize = cfg.mtu + 64
    batch = cfg.batch
    read = os.read
    mono = time.monotonic
    sel = select.select
    t_start = mono()
    cpu0 = _cpu_s()
    print("ready", flush=True)
    try:
        while not flags["stop"]:
            due_a = to_server.next_due()
            due_b = to_client.next_due()
            if due_a is None:
                due = due_b
            elif due_b is None or due_a < due_b:
                due = due_a
            else:
                due = due_b
            if stage is not None:
                pt = stage.next_timer()
                if pt is not None and (due is None or pt < due):
                    due = pt
            if due is None:
                timeout: float | None = None
            else:
                timeout = due - mono()
                if timeout < 0:
                    timeout = 0.0
            try:
                ready, _, _ = sel(rlist + stage.fds() if stage else rlist, [], [], timeout)
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                ready = []
            now = mono()
            to_server.release(now, write_s)  # release first: reads may take a while
            to_client.release(now, write_c)
            for fd in ready:
                if fd == sig_r:
                    try:
                        while read(sig_r, 64):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                if fd not in (fd_c, fd_s):
                    if stage is not None:
                        stage.on_readable(fd, now)
                    continue
                core = to_server if fd == fd_c else to_client
                submit = core.submit
                allow = None if stage is None else (
                    stage.to_server if fd == fd_c else stage.to_client)
                from_client = fd == fd_c
                for _ in range(batch):
                    try:
                        pkt = read(fd, bufsize)
                    except BlockingIOError:
                        break
                    except OSError as e:
                        if e.errno in (errno.EAGAIN, errno.EINTR):
                            break
                        raise
                    if nat is not None and from_client:
                        pkt = nat.to_server(pkt, now)  # the NAT is on the client's side
                    if allow is not None and not allow(pkt, now):
                        continue  # the censor dropped it before the link
                    if nat is not None and not from_client:
                        back = nat.to_client(pkt, now)
                        if back is None:
                            continue  # towards a mapping the NAT replaced
                        pkt = back
                    submit(pkt, now)
            if flags["rearm"]:
                flags["rearm"] = 0
                stats["rearms"] += 1
                before = {"to_server": to_server.stats(), "to_client": to_client.stats()}
                stats["before_rearm"] = before
                seed, acked = _rearm_request(cfg, to_server.seed)
                stats["seed"] = seed
                now = mono()
                to_server.reset(seed, now)
                to_client.reset(seed, now)
                if stage is not None:
                    stage.rearm(now, seed)
                if nat is not None:
                    nat.rearm(now, seed)
                if acked:
                    _rearm_ack(cfg, seed, before)
            now = mono()
            if stage is not None:
                stage.poll(now)
            to_server.release(now, write_s)
            to_client.release(now, write_c)
    finally:
        if stage is not None:
            stats["censor"] = stage.stats()
            stage.close()
        if nat is not None:
            stats["rebind"] = nat.stats()
        wall = mono() - t_start
        cpu1 = _cpu_s()
        stats["to_server"] = to_server.stats()
        stats["to_client"] = to_client.stats()
        stats["to_server"]["write_errors"] = write_errors["to_server"]
        stats["to_client"]["write_errors"] = write_errors["to_client"]
        stats["wall_s"] = round(wall, 3)
        stats["cpu_user_s"] = round(cpu1[0] - cpu0[0], 3)
        stats["cpu_sys_s"] = round(cpu1[1] - cpu0[1], 3)
        stats["cpu_fraction"] = round((cpu1[0] + cpu1[1] - cpu0[0] - cpu0[1]) / wall, 4) if wall else 0
        for fd in (fd_c, fd_s, sig_r, sig_w):
            os.close(fd)
        if cfg.stats_path:
            tmp = cfg.stats_path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(stats, f, indent=1)
            os.replace(tmp, cfg.stats_path)
    return stats


def _censor_stage(cfg: EmulatorConfig, now: float) -> Any:
    """The censor stage when ``cfg.extra["censor"]`` holds a ``[censor]`` table, else None.

    ``extra["censor_log"]`` is the run's ``censor.jsonl``; ``extra["prober"]`` gives the
    prober's namespace, source address and the target it compares with.
    """
    table = cfg.extra.get("censor")
    if not table:
        return None
    from .censor_stage import CensorStage

    prober = cfg.extra.get("prober") or {}
    target = prober.get("target")
    return CensorStage(table, cfg.extra.get("censor_log"), now,
                       server_netns=prober.get("netns", cfg.server_netns),
                       target=(str(target[0]), int(target[1])) if target else None,
                       prober_addr=prober.get("addr"))


def _rearm_request(cfg: EmulatorConfig, current: int) -> tuple[int, bool]:
    """(seed to use after a re-arm, whether a request file asked for it).

    The requester (:meth:`..topology.Topology.rearm`) may write ``{"seed": N}`` to
    ``cfg.extra["rearm_path"]`` before SIGUSR1; the file is consumed here.  Without it
    the current seed is kept (the original behaviour).
    """
    path = cfg.extra.get("rearm_path")
    if not path:
        return current, False
    try:
        with open(path) as f:
            seed = int(json.load(f)["seed"])
        os.unlink(path)
    except (OSError, ValueError, KeyError, TypeError):
        return current, False
    return seed, True


def _rearm_ack(cfg: EmulatorConfig, seed: int, before: dict[str, Any]) -> None:
    """Write ``<rearm_path>.done``: the new seed and the counters of the period that ended."""
    path = str(cfg.extra["rearm_path"]) + ".done"
    with open(path + ".tmp", "w") as f:
        json.dump({"seed": seed, "period": before}, f)
    os.replace(path + ".tmp", path)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m quicreality.scenarios.emulator``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m quicreality.scenarios.emulator",
                                 description="quicreality userspace link emulator (TUN relay)")
    ap.add_argument("--config", required=True, help="EmulatorConfig JSON file")
    ap.add_argument("--tag", default="", help="run tag (informational; lets `clean` find us)")
    args = ap.parse_args(argv)
    parent = os.getppid()
    die_with_parent(signal.SIGTERM)  # die with the runner
    if os.getppid() != parent:
        return 1
    with open(args.config) as f:
        cfg = EmulatorConfig.from_json(f.read())
    try:
        run_emulator(cfg)
    except OSError as e:
        print(f"emulator: {e}", file=sys.stderr)
        return 1
    return 0
