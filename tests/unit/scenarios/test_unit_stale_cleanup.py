"""A dead worker's unit leaves no work dir, and its partial rep folder never reaches the results
tree (issue 16: a worker SIGKILLed mid-unit, the unit retried elsewhere).

The lab test (``tests/lab/test_dask_executor.py``) kills a real worker; these pin the rules:
which work dirs :func:`unit.sweep_stale_units` removes, and that :func:`unit.unpack` replaces a
rep folder instead of merging into it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from quicreality.scenarios import cleanup
from quicreality.scenarios.executors import unit


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_sweep_removes_only_work_dirs_whose_owners_are_all_gone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    cleaned: list[str] = []
    monkeypatch.setattr(cleanup, "clean",
                        lambda rid: cleaned.append(rid) or cleanup.CleanReport(namespaces=[rid]))
    dead = tmp_path / "qr-abc123-unit-x1"
    live = tmp_path / "qr-def456-unit-x2"
    mixed = tmp_path / "qr-0a0b0c-unit-x3"
    bare = tmp_path / "qr-111111-unit-x4"
    other = tmp_path / "qr-222222-scratch-x5"
    for d in (dead, live, mixed, bare, other):
        (d / "out").mkdir(parents=True)
    unit._write_owners(dead, worker=_dead_pid(), unit=_dead_pid())
    unit._write_owners(live, worker=unit.os.getpid())
    unit._write_owners(mixed, worker=_dead_pid(), unit=unit.os.getpid())
    # a reused pid: the process runs, but it started at another time than the owner did
    (other / unit.OWNER_FILE).write_text(json.dumps({"worker": [_dead_pid(), "1"]}))

    out = unit.sweep_stale_units()

    assert out["workdirs"] == [str(dead)] and out["namespaces"] == ["abc123"]
    assert cleaned == ["abc123"]
    assert not dead.exists()
    assert live.exists() and mixed.exists() and bare.exists() and other.exists()


def test_unpack_replaces_a_rep_folder_instead_of_merging(tmp_path: Path) -> None:
    src = tmp_path / "src" / "run1"
    rep = src / "sc" / "dl" / "ours__ours" / "rep-1"
    rep.mkdir(parents=True)
    (rep / "samples.jsonl").write_text("{}\n")
    dest = tmp_path / "runs"
    stale = dest / "run1" / "sc" / "dl" / "ours__ours" / "rep-1"
    stale.mkdir(parents=True)
    (stale / "client.pcap").write_text("partial")

    reps = unit.unpack(unit.pack(src), dest)

    assert reps == [stale]
    assert sorted(p.name for p in stale.iterdir()) == ["samples.jsonl"]
