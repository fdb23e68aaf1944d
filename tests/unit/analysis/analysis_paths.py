"""Paths of the real files the analysis tests read (tests/data/analysis and captures/)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "tests" / "data" / "analysis"
CAPTURES = REPO / "captures"


def sample_run() -> Path:
    """The committed sample run folder under captures/ (exactly one is committed)."""
    runs = sorted(p for p in CAPTURES.iterdir() if p.is_dir() and any(p.rglob("rep-*")))
    assert len(runs) == 1, f"expected one sample run in {CAPTURES}, found {runs}"
    return runs[0]
