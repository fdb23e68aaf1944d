"""``python -m quicreality.build``'s bookkeeping (no compiling here): which files a build leaves,
stale detection against the stamp, and --clean."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from quicreality import build


@pytest.fixture()
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pkg = tmp_path / "quicreality"
    (pkg / "wire").mkdir(parents=True)
    (pkg / "wire" / "buffer.py").write_text("X = 1\n")
    monkeypatch.setattr(build, "ROOT", tmp_path)
    monkeypatch.setattr(build, "PACKAGE", pkg)
    monkeypatch.setattr(build, "STAMP", pkg / "_mypyc_stamp.json")
    monkeypatch.setattr(build, "MODULES", ("quicreality.wire.buffer",))
    return tmp_path


def _stamp(tree: Path, text: str) -> None:
    digest = hashlib.sha256(text.encode()).hexdigest()
    (tree / "quicreality" / "_mypyc_stamp.json").write_text(
        json.dumps({"sources": {"quicreality.wire.buffer": digest}}))


def test_no_stamp_is_never_stale(tree: Path) -> None:
    assert build.stale_modules() == []


def test_a_changed_source_is_stale(tree: Path) -> None:
    _stamp(tree, "X = 1\n")
    assert build.stale_modules() == []
    (tree / "quicreality" / "wire" / "buffer.py").write_text("X = 2\n")
    assert build.stale_modules() == ["quicreality.wire.buffer"]


def test_clean_removes_extensions_and_stamp(tree: Path) -> None:
    so = tree / "quicreality" / "wire" / "buffer.cpython-311-x86_64-linux-gnu.so"
    shared = tree / "quicreality" / "_native__mypyc.cpython-311-x86_64-linux-gnu.so"
    so.write_bytes(b"")
    shared.write_bytes(b"")
    _stamp(tree, "X = 1\n")
    assert set(build.compiled_files()) == {so, shared}
    assert build.clean() == 3
    assert build.compiled_files() == [] and not build.STAMP.exists()
    assert (tree / "quicreality" / "wire" / "buffer.py").exists()


def test_check_exit_status(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert build.main(["--check"]) == 1
    (tree / "quicreality" / "wire" / "buffer.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    _stamp(tree, "X = 1\n")
    assert build.main(["--check"]) == 0
    (tree / "quicreality" / "wire" / "buffer.py").write_text("X = 2\n")
    assert build.main(["--check"]) == 1
    assert "no up-to-date" in capsys.readouterr().out
