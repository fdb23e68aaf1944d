"""kill_pids / pid_running: the teardown helpers shared by the topology and ``clean``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from quicreality.scenarios.procutil import kill_pids, pid_running

IGNORES_TERM = ("import signal, sys, time\n"
                "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                "print('ready', flush=True)\n"
                "time.sleep(30)\n")


def test_kill_pids_terminates_politely_first() -> None:
    p = subprocess.Popen(["sleep", "30"])
    try:
        assert pid_running(p.pid)
        kill_pids([p.pid], grace=5.0)
        assert p.wait(timeout=5) == -signal.SIGTERM
    finally:
        p.kill()
        p.wait()


def test_kill_pids_sigkills_what_ignores_sigterm_after_the_grace() -> None:
    p = subprocess.Popen([sys.executable, "-c", IGNORES_TERM], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline() == "ready\n"
        t0 = time.monotonic()
        kill_pids([p.pid], grace=0.3)
        assert p.wait(timeout=5) == -signal.SIGKILL
        assert time.monotonic() - t0 >= 0.3
    finally:
        p.kill()
        p.wait()
        if p.stdout is not None:
            p.stdout.close()


def test_pid_running_is_false_for_gone_and_zombie_processes() -> None:
    p = subprocess.Popen(["true"])
    deadline = time.monotonic() + 5
    while pid_running(p.pid) and time.monotonic() < deadline:  # exits, stays a zombie
        time.sleep(0.01)
    assert not pid_running(p.pid)
    p.wait()
    assert not pid_running(p.pid)
    kill_pids([p.pid])  # already gone: no error
