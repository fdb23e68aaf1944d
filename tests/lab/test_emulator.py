"""Lab tests of the userspace link emulator on real namespaces (root, TUN).

Each test builds a ``qr-<id>-*`` topology, sends real traffic through the
emulator and checks the emulator against its own specification.  Sequence
numbered UDP is sent and received in this process through sockets opened
inside the namespaces (``socket_in_netns``), which gives exact per-packet
delays and drop patterns.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import pytest

from quicreality.scenarios.model import Blackhole, GilbertElliott, Impairment, Link
from quicreality.scenarios.nsutil import socket_in_netns
from quicreality.scenarios.topology import PREFIX, Topology, new_run_id

pytestmark = [pytest.mark.lab]


@pytest.fixture(autouse=True)
def _preconditions() -> None:
    """Root and /dev/net/tun are requirements of the lab phase, not reasons to skip."""
    assert os.geteuid() == 0, "lab tests need root (network namespaces, TUN): run them as root"
    assert os.path.exists("/dev/net/tun"), "/dev/net/tun is missing"

PORT = 5999
HDR = struct.Struct("!Iq")  # seq, send time (ns, monotonic)


def need(tool: str) -> None:
    assert shutil.which(tool) is not None, f"{tool} not installed: run scripts/setup.sh"


@dataclass
class Received:
    seqs: list[int] = field(default_factory=list)
    owd_ms: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)


def udp_exchange(topo: Topology, n: int, interval_s: float, size: int = 1200,
                 direction: str = "to_server", start_seq: int = 0, keep_payload: bool = False,
                 settle_s: float = 0.3) -> Received:
    """Send ``n`` numbered UDP datagrams of ``size`` payload bytes; collect what arrives."""
    src, dst = ("client", "server") if direction == "to_server" else ("server", "client")
    rx = socket_in_netns(topo.ns(dst))
    tx = socket_in_netns(topo.ns(src))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    rx.bind((topo.addr(dst), PORT))
    rx.settimeout(0.05)
    out = Received()
    stop = threading.Event()

    def receive() -> None:
        while True:
            try:
                data = rx.recv(65535)
            except TimeoutError:
                if stop.is_set():
                    return
                continue
            now = time.monotonic_ns()
            seq, sent = HDR.unpack_from(data)
            out.seqs.append(seq)
            out.owd_ms.append((now - sent) / 1e6)
            out.times.append(now / 1e9)
            if keep_payload:
                out.payloads.append(data)

    th = threading.Thread(target=receive, daemon=True)
    th.start()
    pad = bytes(size - HDR.size)
    t0 = time.monotonic()
    try:
        for i in range(n):
            target = t0 + i * interval_s
            delay = target - time.monotonic()
            if delay > 0.0002:
                time.sleep(delay)
            tx.sendto(HDR.pack(start_seq + i, time.monotonic_ns()) + pad, (topo.addr(dst), PORT))
        time.sleep(settle_s)
    finally:
        stop.set()
        th.join(5)
        rx.close()
        tx.close()
    return out


def binomial_bound(n: int, p: float, z: float = 3.29) -> tuple[float, float]:
    """99.9 % normal-approximation interval of Binomial(n, p) counts."""
    sd = math.sqrt(n * p * (1 - p))
    return n * p - z * sd, n * p + z * sd


def test_delay_within_2ms_ping_and_one_way() -> None:
    need("ping")
    link = Link(to_server=Impairment(delay_ms=25), to_client=Impairment(delay_ms=15))
    with Topology.create(new_run_id(), link, seed=1) as topo:
        r = topo.run("client", ["ping", "-c", "20", "-i", "0.02", "-q", topo.addr("server")])
        avg = float(r.stdout.split("rtt min/avg/max/mdev = ")[1].split("/")[1])
        up = udp_exchange(topo, 200, 0.002, direction="to_server")
        down = udp_exchange(topo, 200, 0.002, direction="to_client")
    assert abs(avg - 40.0) <= 2.0, r.stdout
    assert len(up.owd_ms) == 200 and len(down.owd_ms) == 200
    up_med = sorted(up.owd_ms)[100]
    down_med = sorted(down.owd_ms)[100]
    print(f"ping avg {avg:.3f} ms (40); one-way median up {up_med:.3f} (25) down {down_med:.3f} (15);"
          f" worst up {max(up.owd_ms):.3f}")
    # The spec: delay within ±2 ms.  Never early; the median within ±2 ms and at least 95 %
    # of packets within +2 ms (outliers are scheduling of this Python receiver or of the
    # emulator on a shared 2-core machine, and are counted by the emulator as late releases).
    for got, d in ((up, 25.0), (down, 15.0)):
        assert min(got.owd_ms) >= d - 0.1
        assert abs(sorted(got.owd_ms)[len(got.owd_ms) // 2] - d) <= 2.0
        within = sum(1 for x in got.owd_ms if x <= d + 2.0) / len(got.owd_ms)
        print(f"  {d} ms: {within:.1%} within +2 ms")
        assert within >= 0.95


def test_loss_within_binomial_bound_and_matches_emulator_counter() -> None:
    n, p = 2000, 0.05
    link = Link.symmetric(Impairment(delay_ms=1, loss=p))
    with Topology.create(new_run_id(), link, seed=7) as topo:
        got = udp_exchange(topo, n, 0.0003)
    lost = n - len(set(got.seqs))
    lo, hi = binomial_bound(n, p)
    stats = topo.emulator_stats
    assert stats is not None
    print(f"lost {lost}/{n} ({lost / n:.4f}), 99.9% bound [{lo:.0f}, {hi:.0f}]")
    assert lo <= lost <= hi
    assert stats["to_server"]["dropped"]["loss"] == lost


def test_rate_cap_with_udp_at_twice_the_rate() -> None:
    rate = 20.0
    link = Link.symmetric(Impairment(rate_mbit=rate, queue_packets=50, delay_ms=5))
    size = 1200
    interval = (size + 28) * 8 / (2 * rate * 1e6)  # offered: 2x the cap in IP bytes
    with Topology.create(new_run_id(), link, seed=1) as topo:
        got = udp_exchange(topo, int(2.0 / interval), interval, size=size, direction="to_client")
    span = got.times[-1] - got.times[0]
    measured = (len(got.times) - 1) * (size + 28) * 8 / span / 1e6
    stats = topo.emulator_stats
    assert stats is not None
    print(f"rate cap {rate} Mbit/s: received {measured:.3f} Mbit/s of IP bytes "
          f"({len(got.times)} packets); queue drops {stats['to_client']['dropped']['queue']}; "
          f"emulator cpu {stats['cpu_fraction']}")
    assert measured == pytest.approx(rate, rel=0.03)
    assert stats["to_client"]["dropped"]["queue"] > 0


def test_reordering_only_when_jitter_with_reorder() -> None:
    def inversions(reorder: bool) -> int:
        imp = Impairment(delay_ms=10, jitter_ms=5, reorder=reorder)
        with Topology.create(new_run_id(), Link.symmetric(imp), seed=3) as topo:
            got = udp_exchange(topo, 1000, 0.0005)
        assert len(got.seqs) == 1000, f"reorder={reorder}: {len(got.seqs)} received"
        return sum(1 for a, b in zip(got.seqs, got.seqs[1:], strict=False) if b < a)

    with_reorder, without = inversions(True), inversions(False)
    print(f"inversions with reorder: {with_reorder}, without: {without}")
    assert with_reorder > 50
    assert without == 0


def test_same_seed_same_drop_pattern() -> None:
    imp = Impairment(delay_ms=2, loss=0.05, gilbert_elliott=GilbertElliott(p=0.02, r=0.3))

    def pattern(topo: Topology) -> set[int]:
        got = udp_exchange(topo, 1000, 0.0003, settle_s=0.1)
        return set(range(1000)) - set(got.seqs)

    with Topology.create(new_run_id(), Link.symmetric(imp), seed=21) as topo:
        topo.rearm()
        first = pattern(topo)
        topo.rearm()
        again = pattern(topo)  # re-arm re-seeds: the same pattern from packet one
    with Topology.create(new_run_id(), Link.symmetric(imp), seed=21) as topo2:
        other_process = pattern(topo2)
    with Topology.create(new_run_id(), Link.symmetric(imp), seed=22) as topo3:
        other_seed = pattern(topo3)
    print(f"drops seed 21: {len(first)}, seed 22: {len(other_seed)}")
    assert first and first == again == other_process
    assert first != other_seed


def test_tcp_bbr_through_the_emulator() -> None:
    need("iperf3")
    link = Link.symmetric(Impairment(delay_ms=10, rate_mbit=20, queue_packets=50, loss=0.005))
    with Topology.create(new_run_id(), link, seed=1) as topo:
        topo.popen("server", ["iperf3", "-s", "-1", "-B", topo.addr("server")],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        r = topo.run("client", ["iperf3", "-c", topo.addr("server"), "-R", "-C", "bbr",
                                "-t", "3", "-J"], timeout=30)
    j = json.loads(r.stdout)
    algo = j["end"].get("sender_tcp_congestion")
    mbit = j["end"]["sum_received"]["bits_per_second"] / 1e6
    print(f"TCP {algo}: {mbit:.2f} Mbit/s over a 20 Mbit/s, 20 ms RTT, 0.5 % loss link")
    assert algo == "bbr"
    assert mbit > 0.8 * 20 * 1448 / 1500


def test_corruption_dropped_by_kernel_or_delivered_with_fixed_checksum() -> None:
    for fix in (False, True):
        imp = Impairment(corrupt=0.3, corrupt_fix_checksum=fix)
        with Topology.create(new_run_id(), Link.symmetric(imp), seed=5) as topo:
            got = udp_exchange(topo, 1000, 0.0003, keep_payload=True, settle_s=0.1)
        stats = topo.emulator_stats
        assert stats is not None
        corrupted = stats["to_server"]["corrupted"]
        lo, hi = binomial_bound(1000, 0.3)
        assert lo <= corrupted <= hi
        bad = sum(1 for p in got.payloads
                  if any(p[HDR.size:]) or HDR.unpack_from(p)[0] >= 1000)
        print(f"corrupt fix_checksum={fix}: corrupted {corrupted}, received {len(got.seqs)}, "
              f"with visibly damaged payload {bad}")
        if fix:
            assert len(got.seqs) == 1000  # every corrupted packet still delivered
            assert corrupted - 20 <= bad <= corrupted  # (hits in the timestamp are invisible)
        else:
            assert len(got.seqs) == 1000 - corrupted  # the kernel dropped every corrupted one
            assert bad == 0


def test_duplicate_and_blackhole() -> None:
    imp = Impairment(duplicate=0.2, blackhole=Blackhole(on_s=0.4, off_s=0.3))
    link = Link(to_server=imp, to_client=Impairment())
    with Topology.create(new_run_id(), link, seed=5) as topo:
        topo.rearm()
        got = udp_exchange(topo, 1000, 0.001, settle_s=0.1)
    stats = topo.emulator_stats
    assert stats is not None
    dups = len(got.seqs) - len(set(got.seqs))
    missing = set(range(1000)) - set(got.seqs)
    print(f"duplicates {dups} (emulator {stats['to_server']['duplicated']}), "
          f"blackholed {len(missing)} (~300 expected) seq {min(missing)}..{max(missing)}")
    assert dups == stats["to_server"]["duplicated"] > 0
    assert stats["to_server"]["dropped"]["blackhole"] == len(missing)
    assert 250 <= len(missing) <= 330
    assert min(missing) >= 370 and max(missing) <= 730


# --------------------------------------------------------------------------- cleanup


def our_namespaces(run_id: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"{PREFIX}{run_id}")]


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except FileNotFoundError:
        return False


def test_teardown_on_exception() -> None:
    run_id = new_run_id()
    with pytest.raises(RuntimeError, match="boom"), \
            Topology.create(run_id, Link.symmetric(Impairment(delay_ms=1))) as topo:
        emu = topo.emulator_pid
        sleeper = topo.popen("server", ["sleep", "60"])
        assert len(our_namespaces(run_id)) == 3
        raise RuntimeError("boom")
    assert our_namespaces(run_id) == []
    assert emu is not None and not pid_alive(emu)
    assert sleeper.poll() is not None


CHILD = r"""
import sys, time
from quicreality.scenarios.model import Impairment, Link
from quicreality.scenarios.topology import Topology
with Topology.create(sys.argv[1], Link.symmetric(Impairment(delay_ms=1))) as topo:
    topo.popen("client", ["sleep", "60"])
    print(topo.emulator_pid, flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_child_runner_cleans_up_on_signal(sig: signal.Signals) -> None:
    run_id = new_run_id()
    p = subprocess.Popen([sys.executable, "-c", CHILD, run_id], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        emu = int(p.stdout.readline())
        assert len(our_namespaces(run_id)) == 3
        p.send_signal(sig)
        p.wait(timeout=15)
        if sig == signal.SIGKILL:  # nothing ran in the runner: `clean` must remove it all
            time.sleep(0.5)
            assert not pid_alive(emu)  # PR_SET_PDEATHSIG stopped the emulator
            r = subprocess.run([sys.executable, "-m", "quicreality.scenarios", "clean"],
                               capture_output=True, text=True, timeout=30, check=False)
            assert r.returncode == 0, r.stderr
        assert our_namespaces(run_id) == []
        assert not pid_alive(emu)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
