"""quicreality.aio.gc_policy: the thresholds and freeze of ``python -m quicreality``."""

from __future__ import annotations

import gc
import subprocess
import sys

from quicreality.aio import gc_policy


def test_default_leaves_the_collector_alone() -> None:
    before = gc.get_threshold()
    assert gc_policy.tune({"QR_GC": "default"}) is False
    assert gc.get_threshold() == before


def test_python_m_quicreality_runs_with_the_tuned_collector() -> None:
    code = ("import gc, runpy, sys; sys.argv = ['quicreality', '--help']\n"
            "try:\n    runpy.run_module('quicreality', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print(gc.get_threshold(), gc.get_freeze_count() > 0, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=None)
    expected = (gc_policy.GEN0_THRESHOLD, gc_policy.GEN1_THRESHOLD, gc_policy.GEN2_THRESHOLD)
    assert out.stderr.strip().splitlines()[-1] == f"{expected} True"
