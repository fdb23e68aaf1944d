"""The sans-IO core never touches the clock, sockets, asyncio or os.urandom (architecture rule 1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3] / "quicreality"
CORE = ["wire", "quic", "tls", "h3", "qlog", "reality", "relay"]
FORBIDDEN_MODULES = {"time", "socket", "asyncio"}


def core_files() -> list[Path]:
    files: list[Path] = []
    for pkg in CORE:
        files.extend(sorted((ROOT / pkg).rglob("*.py")))
    return files


def violations(path: Path) -> list[str]:
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
        elif isinstance(node, ast.Attribute) and node.attr == "urandom":
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                found.append(f"{path.name}:{node.lineno} os.urandom")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "__import__":
                found.append(f"{path.name}:{node.lineno} __import__")
    return found


def test_core_packages_exist() -> None:
    assert len(core_files()) > 20


@pytest.mark.parametrize("path", core_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_module_is_sans_io(path: Path) -> None:
    assert violations(path) == []


def test_checker_detects_violations(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nimport os\nx = os.urandom(4)\nfrom asyncio import sleep\n")
    assert len(violations(bad)) == 3
