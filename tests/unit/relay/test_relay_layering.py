"""The relay's layering: sessions in relay/ never reach into aio/; the aio/relay_* modules form
no import cycle (not even under TYPE_CHECKING) and take no ``Any`` parameters."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3] / "quicreality"
EDGE = sorted((ROOT / "aio").glob("relay_*.py"))


def imported_modules(path: Path, package: str) -> set[str]:
    """Absolute names of the quicreality modules ``path`` imports (TYPE_CHECKING included)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            out.add(name)
            out.update(f"{name}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("quicreality")}


def test_relay_sessions_never_import_the_edge() -> None:
    for path in sorted((ROOT / "relay").glob("*.py")):
        bad = {m for m in imported_modules(path, "quicreality.relay")
               if m.startswith(("quicreality.aio", "quicreality.scenarios", "quicreality.bench"))}
        assert not bad, (path.name, bad)


def test_edge_modules_form_no_import_cycle() -> None:
    names = {f"quicreality.aio.{p.stem}": p for p in EDGE}
    graph = {name: {m for m in imported_modules(path, "quicreality.aio") if m in names}
             for name, path in names.items()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph[start]:
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(name for name in graph if reaches(name, name, {name}))
    assert cycles == []


def test_edge_takes_no_any_parameters() -> None:
    found = []
    for path in EDGE:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
                for arg in args:
                    if arg.annotation is not None and "Any" in ast.unparse(arg.annotation):
                        found.append(f"{path.name}:{node.lineno} {node.name}({arg.arg})")
    assert found == []
