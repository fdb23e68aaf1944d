"""Each named constant is defined once (issue 10's hygiene rule).

A module-level ``UPPER_CASE`` name bound to a number or bytes literal, whose name (leading
underscores aside) *and* value are bound again in another module of the package, is a copy:
import it from where it is defined instead (e.g. ``quic.crypto.AEAD_TAG_SIZE``,
``tls.constants.HandshakeType``, ``scenarios.procutil.PR_SET_PDEATHSIG``). ``ALLOWED`` lists
names that coincide but mean different things.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3] / "quicreality"

#: (name, value) pairs that are the same literal by coincidence, with what each one means.
ALLOWED: dict[tuple[str, object], str] = {
    ("VERSION", 1): "relay.protocol: the relay preface version; analysis.cache: the cache "
                    "file format version",
}


def literal_constants(source: str) -> list[tuple[str, object, int]]:
    """Module-level ``(NAME, value, line)`` for UPPER_CASE names bound to int/bytes literals."""
    out = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if not (isinstance(value, ast.Constant) and isinstance(value.value, (int, bytes))
                and not isinstance(value.value, bool)):
            continue
        for t in targets:
            if isinstance(t, ast.Name) and t.id.lstrip("_").isupper():
                out.append((t.id.lstrip("_"), value.value, node.lineno))
    return out


def duplicates(sources: dict[str, str]) -> dict[tuple[str, object], list[str]]:
    """``(name, value)`` → the modules (``path:line``) binding it, where more than one does."""
    where: defaultdict[tuple[str, object], list[str]] = defaultdict(list)
    for path, src in sources.items():
        for name, value, line in literal_constants(src):
            where[(name, value)].append(f"{path}:{line}")
    return {k: v for k, v in where.items() if len({p.split(':')[0] for p in v}) > 1}


def test_no_constant_is_defined_twice() -> None:
    sources = {str(p.relative_to(ROOT.parent)): p.read_text() for p in ROOT.rglob("*.py")}
    found = {k: v for k, v in duplicates(sources).items() if k not in ALLOWED}
    assert found == {}, "constants defined in more than one module (import them instead)"


def test_allowed_coincidences_still_exist() -> None:
    sources = {str(p.relative_to(ROOT.parent)): p.read_text() for p in ROOT.rglob("*.py")}
    assert set(ALLOWED) <= set(duplicates(sources)), "an ALLOWED entry is gone: delete it"


def test_the_check_finds_a_copy() -> None:
    srcs = {"a.py": "X = 1\n_TAG = 16\nname = 3\n", "b.py": "TAG = 16\nX = 2\nY: int = 16\n"}
    assert duplicates(srcs) == {("TAG", 16): ["a.py:2", "b.py:1"]}
