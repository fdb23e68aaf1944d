"""The qlog-loader target holds no memory per input under atheris's instrumentation.

A one-hour atheris campaign of ``qlog-loader`` grew from 159 MB to 365 MB. The cause
(docs/security.md, "Fuzzing figures"): atheris 3.0's comparison tracing keeps a reference to the
result of every ``==`` (and ``<``, ...) in instrumented code whose result is not a bool, so
``events["name"] == "..."`` in :func:`~quicreality.analysis.qlog.metrics_table` left one pandas
Series per input alive (~2.8 KB, ~20 objects). The same inputs without instrumentation hold
nothing. This test runs the target as ``python -m quicreality.fuzz`` builds it (instrumented by
atheris, in a subprocess so that no other test runs instrumented code) over seeds and mutations,
and checks that live pandas objects and the live object count do not grow with the inputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import gc, json, sys
from pathlib import Path
import atheris
with atheris.instrument_imports(include=["quicreality"]):
    from quicreality.fuzz.targets import get
    target = get("qlog-loader")
    fn = target.setup()
import pandas as pd
from quicreality.fuzz.harness import read_corpus, replay

def live():
    gc.collect()
    objs = gc.get_objects()
    pandas = sum(1 for o in objs if isinstance(o, (pd.Series, pd.DataFrame, pd.Index)))
    return len(objs), pandas

seeds = read_corpus(Path(sys.argv[1]))
first = replay(target, seeds, runs=int(sys.argv[2]), seed=17, one_input=fn)
objs_a, pandas_a = live()
second = replay(target, seeds, runs=int(sys.argv[3]), seed=18, one_input=fn)
objs_b, pandas_b = live()
print(json.dumps({"runs": [first.executions, second.executions],
                  "crashes": len(first.crashes) + len(second.crashes),
                  "objects": [objs_a, objs_b], "pandas": [pandas_a, pandas_b]}))
"""


def test_qlog_loader_holds_nothing_per_input_under_atheris_instrumentation() -> None:
    corpus = ROOT / "tests" / "fuzz" / "corpus" / "qlog-loader"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(corpus), "100", "400"],
                         capture_output=True, text=True, timeout=600, env=env, cwd=ROOT,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    print(got)
    assert got["runs"] == [100, 400] and got["crashes"] == 0
    # Before the fix: one Series (with its index and blocks) per input that reached
    # metrics_table, i.e. hundreds of pandas objects and thousands of other objects more
    # after the 400 inputs than after the 100.
    assert got["pandas"][1] <= 5, got
    assert got["objects"][1] - got["objects"][0] < 400, got
