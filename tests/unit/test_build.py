"""``python -m quicreality.build``'s bookkeeping (no compiling here): which files a build leaves,
stale detection against the stamp, --clean, and the choice between the extensions and the pure
Python fallback (:mod:`quicreality._compiled`)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quicreality import _compiled, build


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


def test_a_module_added_to_the_list_since_the_build_is_stale(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _stamp(tree, "X = 1\n")
    (tree / "quicreality" / "wire" / "rangeset.py").write_text("Y = 1\n")
    monkeypatch.setattr(build, "MODULES", ("quicreality.wire.buffer", "quicreality.wire.rangeset"))
    assert build.stale_modules() == ["quicreality.wire.rangeset"]
    assert build.main(["--check"]) == 1


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


# ----------------------------------------------------------------- mode: compiled or pure


def _fake_build(root: Path, *, stamp: bool = True) -> None:
    pkg = root / "quicreality"
    (pkg / "wire").mkdir(parents=True, exist_ok=True)
    (pkg / "wire" / "buffer.py").write_text("X = 1\n")
    (pkg / "_native__mypyc.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    if stamp:
        digest = hashlib.sha256(b"X = 1\n").hexdigest()
        (pkg / "_mypyc_stamp.json").write_text(
            json.dumps({"sources": {"quicreality.wire.buffer": digest}}))


def test_no_build_is_pure_with_nothing_to_redirect(tmp_path: Path) -> None:
    (tmp_path / "quicreality").mkdir()
    mode = _compiled.decide({}, root=tmp_path)
    assert not mode.compiled and mode.pure_modules == () and mode.warning is None


def test_a_current_build_is_compiled(tmp_path: Path) -> None:
    _fake_build(tmp_path)
    mode = _compiled.decide({"QR_MYPYC_STRICT": "1"}, root=tmp_path)
    assert mode.compiled and mode.pure_modules == () and mode.warning is None


def test_qr_pure_redirects_every_compiled_module(tmp_path: Path) -> None:
    _fake_build(tmp_path)
    mode = _compiled.decide({"QR_PURE": "1"}, root=tmp_path)
    assert not mode.compiled and "QR_PURE=1" in mode.reason
    assert set(mode.pure_modules) == set(_compiled.MODULES)   # all or nothing
    assert _compiled.decide({"QR_PURE": "0"}, root=tmp_path).compiled


def test_a_stale_build_falls_back_to_pure_with_one_warning_line(tmp_path: Path) -> None:
    _fake_build(tmp_path)
    (tmp_path / "quicreality" / "wire" / "buffer.py").write_text("X = 2\n")
    mode = _compiled.decide({}, root=tmp_path)
    assert not mode.compiled and set(mode.pure_modules) == set(_compiled.MODULES)
    assert mode.warning is not None and "\n" not in mode.warning and "wire.buffer" in mode.warning


def test_a_stale_build_is_an_import_error_when_strict_but_not_for_the_builder(tmp_path: Path) -> None:
    _fake_build(tmp_path)
    (tmp_path / "quicreality" / "wire" / "buffer.py").write_text("X = 2\n")
    with pytest.raises(ImportError, match=r"stale mypyc build \(wire\.buffer changed"):
        _compiled.decide({"QR_MYPYC_STRICT": "1"}, root=tmp_path)
    mode = _compiled.decide({"QR_MYPYC_STRICT": "1"}, root=tmp_path, building=True)
    assert not mode.compiled and mode.warning is None


def test_extensions_without_a_stamp_count_as_stale(tmp_path: Path) -> None:
    _fake_build(tmp_path, stamp=False)
    mode = _compiled.decide({}, root=tmp_path)
    assert not mode.compiled and mode.warning is not None


def test_pure_finder_loads_the_source_next_to_a_broken_extension(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "qrfakepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text("WHERE = 'source'\n")
    (pkg / f"mod{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_bytes(b"not an ELF file")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("qrfakepkg", "qrfakepkg.mod"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ImportError):          # the extension takes precedence, and is broken
        importlib.import_module("qrfakepkg.mod")
    monkeypatch.delitem(sys.modules, "qrfakepkg.mod", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_compiled.PureFinder(["qrfakepkg.mod"], tmp_path),
                                           *sys.meta_path])
    assert importlib.import_module("qrfakepkg.mod").WHERE == "source"


def test_this_process_runs_all_compiled_or_all_pure() -> None:
    mode = _compiled.active
    assert mode is not None
    native = {m for m, is_native in build.status() if is_native}
    assert native == (set(build.MODULES) if mode.compiled else set()), mode.reason


def test_qr_pure_in_a_subprocess_imports_every_module_from_source() -> None:
    code = ("import importlib, quicreality.build as b; "
            "print(sum(importlib.import_module(m).__file__.endswith('.py') for m in b.MODULES))")
    env = {**os.environ, "QR_PURE": "1", "PYTHONPATH": str(build.ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=build.ROOT)
    assert out.stdout.split() == [str(len(build.MODULES))]
    assert out.stderr == ""


def test_status_names_the_mode(capsys: pytest.CaptureFixture[str]) -> None:
    assert build.main(["--status"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(("mode: compiled (", "mode: pure ("))


def test_classes_reinitialised_in_place_are_not_compiled() -> None:
    # LossRecovery.reset_path_state re-runs __init__ in place on a controller without reset()
    # (a no-op on a mypyc class): such controllers stay interpreted.
    import importlib

    from quicreality.quic.recovery.congestion import CONGESTION_CONTROLLERS
    for name, factory in CONGESTION_CONTROLLERS.items():
        module = getattr(factory, "__module__", "")
        if module in build.MODULES:
            assert callable(getattr(factory, "reset", None)), name
    for module in ("quicreality.quic.recovery.rtt", "quicreality.quic.recovery.pacer"):
        if module in build.MODULES:
            assert callable(getattr(importlib.import_module(module), "RttEstimator" if
                                    module.endswith("rtt") else "Pacer").reset)


def test_the_fuzz_command_runs_pure_whatever_the_build(tmp_path: Path) -> None:
    _fake_build(tmp_path)   # current: would be compiled
    mode = _compiled.decide({"QR_MYPYC_STRICT": "1"}, fuzzing=True, root=tmp_path)
    assert not mode.compiled and set(mode.pure_modules) == set(_compiled.MODULES)
    assert "atheris" in mode.reason and mode.warning is None


@pytest.mark.parametrize("argv, module", [
    (["py", "-m", "quicreality.fuzz", "list"], "quicreality.fuzz"),
    (["py", "-v", "-X", "importtime", "-mquicreality.build", "--status"], "quicreality.build"),
    (["py", "-W", "error", "-m", "quicreality.build"], "quicreality.build"),
    (["py", "-c", "import quicreality", "-m", "quicreality.build"], None),
    (["py", "script.py", "-m", "quicreality.build"], None),
    (["py"], None),
])
def test_main_module_reads_the_interpreter_command_line(argv: list[str], module: str | None) -> None:
    assert _compiled.main_module(argv) == module


def test_the_stale_warning_is_printed_once_per_process_tree(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    stale = _compiled.Mode(False, "stale", ("quicreality.nothing",), "quicreality: stale mypyc build")
    monkeypatch.setattr(_compiled, "active", None)
    monkeypatch.setattr(_compiled, "decide", lambda *a, **k: stale)
    monkeypatch.delenv(_compiled.WARNED_ENV, raising=False)
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    assert _compiled.activate() is stale
    assert capsys.readouterr().err == "quicreality: stale mypyc build\n"
    assert os.environ[_compiled.WARNED_ENV] == "1"      # inherited by child processes
    monkeypatch.setattr(_compiled, "active", None)
    _compiled.activate()
    assert capsys.readouterr().err == ""
