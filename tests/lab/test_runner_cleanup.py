"""The runner always cleans up: Ctrl-C, SIGTERM, a hung peer, a crashed peer (root).

Each test drives ``python -m quicreality.scenarios run`` as a subprocess and then checks
that its namespaces, its processes (emulator and peers) and its scratch directory are gone,
and that the results say what happened.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SLOW = """
[scenario]
name = "slow"
description = "cleanup test: a slow link so the transfer is still running when we interfere"
reps = 1
seed = 9

[link]
rate_mbit = 2
delay_ms = 10
queue_packets = 50

[link_check]
enabled = false

[[workload]]
name = "big"
kind = "download"
client = "ours"
server = "ours"
size = "20MB"
timeout_s = {timeout}

[[workload]]
name = "after"
kind = "iperf3"
client = "iperf3"
server = "iperf3"
seconds = 1
reverse = true
"""


def _netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _start(tmp: Path, timeout_s: int = 120, only: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    scen = tmp / "slow.toml"
    scen.write_text(SLOW.replace("{timeout}", str(timeout_s)))
    argv = [sys.executable, "-m", "quicreality.scenarios", "run", str(scen), "--results",
            str(tmp / "results")]
    for o in only:
        argv += ["--only", o]
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _run_info(tmp: Path, timeout: float = 30.0) -> tuple[Path, dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = list((tmp / "results" / "runs").glob("*/run.json"))
        if runs:
            try:
                return runs[0].parent, json.loads(runs[0].read_text())
            except json.JSONDecodeError:
                pass
        time.sleep(0.1)
    raise AssertionError("no run.json")


def _wait_for_client(topo_id: str, timeout: float = 60.0) -> None:
    """Until the client peer runs in the client namespace (the transfer is under way)."""
    deadline = time.monotonic() + timeout
    ns = f"qr-{topo_id}-client"
    while time.monotonic() < deadline:
        if ns in _netns():
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                                  check=False).stdout.split()
            for pid in pids:
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"quicreality\x00client" in cmd:
                    time.sleep(1.0)
                    return
        time.sleep(0.1)
    raise AssertionError("the client never started")


def _assert_clean(topo_id: str, tmp: Path) -> None:
    """No namespace, no process (emulator: tagged; peers: they write under tmp), no temp dir."""
    assert not {ns for ns in _netns() if ns.startswith(f"qr-{topo_id}-")}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        for needle in (f"qr-{topo_id}".encode(), str(tmp).encode()):
            assert needle not in cmd, f"leftover process {d.name}: {cmd!r}"
    leftovers = list(Path(tempfile.gettempdir()).glob(f"qr-{topo_id}-*"))
    assert not leftovers, leftovers
    assert not Path(f"/run/quicreality/qr-{topo_id}.owner").exists()


def _interrupt(sig: int, tmp: Path) -> None:
    p = _start(tmp)
    try:
        run, info = _run_info(tmp)
        _wait_for_client(info["topology_run_id"])
        p.send_signal(sig)
        out, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    print(out)
    assert p.returncode == 130, out
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "interrupted"
    assert "interrupted" in out and f"run directory: {run}" in out
    _assert_clean(info["topology_run_id"], tmp)


def test_ctrl_c_mid_transfer_removes_everything(tmp_path: Path) -> None:
    _interrupt(signal.SIGINT, tmp_path)


def test_sigterm_mid_transfer_removes_everything(tmp_path: Path) -> None:
    _interrupt(signal.SIGTERM, tmp_path)


def test_a_hung_peer_is_a_failed_check_and_the_run_goes_on(tmp_path: Path) -> None:
    p = _start(tmp_path, timeout_s=4)  # 20 MB at 2 Mbit/s cannot finish in 4 s (+15 s grace)
    out, _ = p.communicate(timeout=240)
    print(out)
    run, info = _run_info(tmp_path)
    assert p.returncode == 1
    rep = run / "slow" / "big" / "ours__ours" / "rep-1"
    check = json.loads((rep / "check.json").read_text())
    assert not check["ok"] and "hung" in check["reason"]
    assert (rep / "client.stderr").exists() and (rep / "server.stderr").exists()
    after = json.loads((run / "slow" / "after" / "iperf3__iperf3" / "rep-1" / "check.json")
                       .read_text())
    assert after["ok"], after
    _assert_clean(info["topology_run_id"], tmp_path)


def test_a_crashed_server_is_a_failed_check_with_its_stderr_kept(tmp_path: Path) -> None:
    p = _start(tmp_path, timeout_s=10)
    try:
        run, info = _run_info(tmp_path)
        topo_id = info["topology_run_id"]
        _wait_for_client(topo_id)
        pids = subprocess.run(["ip", "netns", "pids", f"qr-{topo_id}-server"],
                              capture_output=True, text=True, check=True).stdout.split()
        killed = 0
        for pid in pids:
            if b"quicreality\x00server" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(int(pid), signal.SIGKILL)
                killed += 1
        assert killed == 1
        out, _ = p.communicate(timeout=240)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    print(out)
    assert p.returncode == 1
    rep = run / "slow" / "big" / "ours__ours" / "rep-1"
    check = json.loads((rep / "check.json").read_text())
    assert not check["ok"] and "server" in check["reason"] and "-9" in check["reason"]
    assert (rep / "server.stderr").exists() and (rep / "server.stdout").exists()
    after = json.loads((run / "slow" / "after" / "iperf3__iperf3" / "rep-1" / "check.json")
                       .read_text())
    assert after["ok"], after
    _assert_clean(topo_id, tmp_path)


def test_a_sigkilled_runner_leaves_nothing_that_clean_does_not_remove(tmp_path: Path) -> None:
    p = _start(tmp_path)
    try:
        _, info = _run_info(tmp_path)
        topo_id = info["topology_run_id"]
        _wait_for_client(topo_id)
        p.kill()  # no teardown can run: SIGKILL
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    time.sleep(0.5)
    assert {f"qr-{topo_id}-client", f"qr-{topo_id}-server"} <= _netns()  # the leftovers
    r = subprocess.run([sys.executable, "-m", "quicreality.scenarios", "clean", "--run-id",
                        topo_id], cwd=REPO, capture_output=True, text=True, timeout=60,
                       check=False)
    print(r.stdout, r.stderr)
    assert r.returncode == 0 and "removed 3 namespaces" in r.stdout
    _assert_clean(topo_id, tmp_path)
