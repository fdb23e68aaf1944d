"""Every package of quicreality says in its ``__init__.py`` what it is for and where to start.

A real docstring: more than a placeholder (at least 80 characters), and it names an entry point
or its parts (``:mod:``, ``:class:``, ``:func:`` or a ``python -m`` command).  And the package
never imports pytest (test harnesses live in ``tests/``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from archgraph import scan_package

ROOT = Path(__file__).resolve().parents[3] / "quicreality"
POINTERS = (":mod:", ":class:", ":func:", "python -m")


def docstring_problem(source: str) -> str | None:
    """Why the module docstring of ``source`` is not a real one (None if it is)."""
    doc = ast.get_docstring(ast.parse(source))
    if not doc:
        return "no docstring"
    if len(doc) < 80:
        return f"placeholder docstring {doc!r}"
    if not any(p in doc for p in POINTERS):
        return "names no entry point or part (:mod:, :class:, :func:, python -m)"
    return None


PACKAGES = sorted(ROOT.rglob("__init__.py"))


@pytest.mark.parametrize("init", PACKAGES, ids=lambda p: str(p.parent.relative_to(ROOT.parent)))
def test_package_docstring_is_real(init: Path) -> None:
    assert docstring_problem(init.read_text()) is None


def test_checker_rejects_placeholders() -> None:
    assert docstring_problem("x = 1\n") == "no docstring"
    assert str(docstring_problem('"""quicreality."""\n')).startswith("placeholder")
    assert str(docstring_problem('"""' + "words " * 20 + '"""\n')).startswith("names no")
    assert docstring_problem('"""' + "words " * 20 + ' See :mod:`.core`."""\n') is None


def test_package_never_imports_pytest() -> None:
    found = [f"{ref.importer}:{ref.lineno}" for info in scan_package(ROOT, type_checking=True).values()
             for ref in info.imports if ref.module.split(".")[0] in ("pytest", "hypothesis")]
    assert found == [], "test harnesses belong in tests/"
