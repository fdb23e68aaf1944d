"""notebooks/camouflage: paired with its .py, only calls quicreality.analysis, committed executed
(the brief asks for the executed notebook, unlike the others), and still runs without errors."""

from __future__ import annotations

import re

import jupytext
import nbformat
from analysis_paths import REPO

NB = REPO / "notebooks" / "camouflage"


def test_camouflage_notebook_is_paired_and_committed_executed() -> None:
    ipynb = nbformat.read(f"{NB}.ipynb", as_version=4)
    py = jupytext.read(f"{NB}.py")
    assert ipynb.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert [(c.cell_type, c.source) for c in ipynb.cells] == [
        (c.cell_type, c.source) for c in py.cells]
    code = [c for c in ipynb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None and c.outputs for c in code)
    assert not [o for c in code for o in c.outputs if o.get("output_type") == "error"]


def test_camouflage_notebook_only_calls_quicreality_analysis() -> None:
    text = NB.with_suffix(".py").read_text()
    imports = [line.split()[1] for line in text.splitlines()
               if line.startswith(("import ", "from "))]
    assert imports and all(m.split(".")[0] in ("quicreality", "pandas") for m in imports)
    assert all(m.startswith("quicreality.analysis") for m in imports if m.startswith("quicreality"))
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for banned in (r"\bsubprocess\b", r"\btshark\b", r"json\.loads?\(", r"read_text\(",
                   r"(?<![.\w])open\("):
        assert not re.search(banned, code), banned


def test_camouflage_notebook_executes() -> None:
    from nbclient import NotebookClient

    nb = nbformat.read(f"{NB}.ipynb", as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(NB.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "\n".join(str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "ours-reality" in text and "chromium-ngtcp2" in text
