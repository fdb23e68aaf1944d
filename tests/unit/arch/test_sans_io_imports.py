"""The sans-IO core never touches the clock, randomness, threads, sockets, asyncio or select.

Architecture rule 1: in ``wire, quic, tls, h3, qlog, reality, relay`` the clock and randomness are
arguments.  Forbidden: importing ``time``, ``socket``, ``asyncio``, ``random``, ``secrets``,
``threading`` or ``select``; calling ``os.urandom``, ``datetime.now``/``utcnow``/``today`` or
``__import__``.  ``datetime`` itself is allowed (``datetime.fromtimestamp(now)`` is how a
certificate check turns the caller's clock into a date).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3] / "quicreality"
CORE = ["wire", "quic", "tls", "h3", "qlog", "reality", "relay"]
FORBIDDEN_MODULES = {"time", "socket", "asyncio", "random", "secrets", "threading", "select"}
#: ``datetime.now()``, ``datetime.datetime.utcnow()``, ``date.today()``, ...: the wall clock.
CLOCK_CALLS = {"now", "utcnow", "today"}
CLOCK_OWNERS = {"datetime", "date"}


def core_files() -> list[Path]:
    """Every source file of the sans-IO packages."""
    files: list[Path] = []
    for pkg in CORE:
        files.extend(sorted((ROOT / pkg).rglob("*.py")))
    return files


def _owner_name(node: ast.expr) -> str | None:
    """``datetime`` for ``datetime``, ``dt.datetime`` and ``_dt.date`` alike."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def violations(path: Path) -> list[str]:
    """``file:line what`` for every forbidden import or call in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"{path.name}:{node.lineno} import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if node.module and node.module.split(".")[0] in FORBIDDEN_MODULES and node.level == 0:
                found.append(f"{path.name}:{node.lineno} from {node.module} import ...")
            if node.module == "os" and any(a.name == "urandom" for a in node.names):
                found.append(f"{path.name}:{node.lineno} from os import urandom")
        elif isinstance(node, ast.Attribute):
            if node.attr == "urandom" and isinstance(node.value, ast.Name) and node.value.id == "os":
                found.append(f"{path.name}:{node.lineno} os.urandom")
            elif node.attr in CLOCK_CALLS and _owner_name(node.value) in CLOCK_OWNERS:
                found.append(f"{path.name}:{node.lineno} {_owner_name(node.value)}.{node.attr}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "__import__"):
            found.append(f"{path.name}:{node.lineno} __import__")
    return found


def test_core_packages_exist() -> None:
    assert len(core_files()) > 20
    for pkg in CORE:
        assert (ROOT / pkg / "__init__.py").is_file(), pkg


@pytest.mark.parametrize("path", core_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_module_is_sans_io(path: Path) -> None:
    assert violations(path) == []


def test_checker_detects_violations(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nimport os\nx = os.urandom(4)\nfrom asyncio import sleep\n")
    assert len(violations(bad)) == 3


def test_checker_detects_randomness_threads_select(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import random\nimport secrets as s\nfrom threading import Thread\n"
                   "import select\ndef f():\n    import random as r\n")
    assert [v.split(" ", 1)[1] for v in violations(bad)] == [
        "import random", "import secrets", "from threading import ...", "import select",
        "import random"]


def test_checker_detects_wall_clock_calls(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import datetime\nimport datetime as _dt\nfrom datetime import date, datetime\n"
                   "a = datetime.now()\nb = _dt.datetime.utcnow()\nc = date.today()\n"
                   "d = datetime.fromtimestamp(0)\n")
    assert [v.split(" ", 1)[1] for v in violations(bad)] == [
        "datetime.now", "datetime.utcnow", "date.today"]


def test_checker_flags_a_planted_import_in_a_copy_of_the_core(tmp_path: Path) -> None:
    """The same checker, run on a copy of a real core module with one planted violation."""
    src = ROOT / "quic" / "packet.py"
    copy = tmp_path / "packet.py"
    copy.write_text(src.read_text() + "\n\ndef _planted() -> int:\n    import secrets\n"
                    "    return secrets.randbits(8)\n")
    assert violations(src) == []
    assert [v.split(" ", 1)[1] for v in violations(copy)] == ["import secrets"]
