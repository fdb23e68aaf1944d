"""notebooks/censorship: paired with its .py, only calls quicreality.analysis, committed executed
against the committed censor-gfw sample (tests/data/censor-run/), and still runs there; the
analysis tables read that sample as the findings (docs/findings.md) state."""

from __future__ import annotations

import os
import re
from pathlib import Path

import jupytext
import nbformat
from analysis_paths import REPO

from quicreality.analysis import censorship
from quicreality.analysis.views import RunView

NB = REPO / "notebooks" / "censorship"
SAMPLE_DIR = REPO / "tests" / "data" / "censor-run"


def sample() -> Path:
    runs = [p for p in SAMPLE_DIR.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def test_censorship_notebook_is_paired_and_committed_executed() -> None:
    ipynb = nbformat.read(f"{NB}.ipynb", as_version=4)
    py = jupytext.read(f"{NB}.py")
    assert ipynb.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert [(c.cell_type, c.source) for c in ipynb.cells] == [
        (c.cell_type, c.source) for c in py.cells]
    code = [c for c in ipynb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None and c.outputs for c in code)
    assert not [o for c in code for o in c.outputs if o.get("output_type") == "error"]


def test_censorship_notebook_only_calls_quicreality_analysis() -> None:
    text = NB.with_suffix(".py").read_text()
    imports = [line.split()[1] for line in text.splitlines()
               if line.startswith(("import ", "from "))]
    assert imports and all(m.split(".")[0] in ("quicreality", "pandas") for m in imports)
    assert all(m.startswith("quicreality.analysis") for m in imports if m.startswith("quicreality"))
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for banned in (r"\bsubprocess\b", r"\btshark\b", r"json\.loads?\(", r"read_text\(",
                   r"(?<![.\w])open\("):
        assert not re.search(banned, code), banned


def test_censorship_notebook_executes_on_the_sample() -> None:
    from nbclient import NotebookClient

    os.environ["QR_RUN_DIR"] = str(sample())
    nb = nbformat.read(f"{NB}.ipynb", as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(NB.parent)}}).execute()
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
                if o.get("output_type") == "error"]


def test_the_sample_reads_as_the_findings_say() -> None:
    run = RunView.open(sample())
    s = censorship.summary(run)
    assert s.loc["curl-blocked-sni", "by"] == "gfw-2025"
    assert s.loc["reality-session-id", "by"] == "fingerprint"
    for w in ("curl-allowed-sni", "quicgo-no-sni", "reality-chrome-probed", "chromium-target"):
        assert s.loc[w, "blocked"].startswith("0/"), s.loc[w]
    assert s.loc["reality-chrome-probed", "probe_verdicts"].startswith("target-like")
    assert s.loc["prober-vs-plain-server", "probe_verdicts"].startswith("distinct")
    p = censorship.probes(run)
    listener = p[p["workload"].isin(["reality-chrome-probed", "chromium-target"])]
    assert len(listener) and listener["same"].all()
    f = censorship.first_flights(run)
    assert f.loc["reality-chrome-probed", "differing"] == f.loc["chromium-target", "differing"]
    assert f.loc["curl-allowed-sni", "differing"] > f.loc["reality-chrome-probed", "differing"]
