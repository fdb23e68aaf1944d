"""The import graph of a package, read with :mod:`ast` (nothing is imported or executed).

Shared by the architecture tests (``test_import_cycles``, ``test_private_imports``,
``test_layering``).  A *module* is a dotted name (``quicreality.quic.errors``; a package is named
by its ``__init__.py``).  Every ``import``/``from ... import`` counts, at module level and inside
functions or classes, except those under ``if TYPE_CHECKING:`` (they never run).

Edges follow what a module uses: ``from a.b import c`` depends on ``a.b.c`` when that is a
submodule and on ``a.b`` (its ``__init__``) otherwise; ``import a.b`` depends on ``a.b``.
Parent packages that Python initialises on the way are not edges (otherwise every
``from . import sibling`` inside a package whose ``__init__`` imports that module would look
like a cycle, though it never reads the half-initialised parent).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ImportRef:
    """One imported name.

    Attributes:
        importer: The module that imports.
        module: The module imported from (absolute, resolved).
        name: The imported name (``None`` for ``import module``).
        lineno: Line of the import statement.
    """

    importer: str
    module: str
    name: str | None
    lineno: int


@dataclass(frozen=True, slots=True)
class AttrRef:
    """``alias._name`` where ``alias`` is bound to a module of the package by an import."""

    importer: str
    module: str
    name: str
    lineno: int


@dataclass(frozen=True, slots=True)
class ModuleInfo:
    """What one source file imports."""

    name: str
    path: Path
    is_package: bool
    imports: tuple[ImportRef, ...]
    attrs: tuple[AttrRef, ...]


def module_name(root: Path, path: Path) -> str:
    """Dotted name of ``path`` inside the package directory ``root``."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _runtime_nodes(tree: ast.AST, *, type_checking: bool = False) -> Iterator[ast.AST]:
    """Every node except the bodies of ``if TYPE_CHECKING:`` (their ``else`` runs), unless
    ``type_checking``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        if not type_checking and isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _resolve(importer: str, is_package: bool, module: str | None, level: int) -> str:
    if level == 0:
        return module or ""
    base = importer.split(".")
    if not is_package:
        base.pop()
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def parse_module(name: str, source: str, *, is_package: bool, path: Path = Path("<src>"),
                 type_checking: bool = False) -> ModuleInfo:
    """Read the imports of one module from its ``source`` (``type_checking``: also those under
    ``if TYPE_CHECKING:``)."""
    tree = ast.parse(source, filename=str(path))
    imports: list[ImportRef] = []
    aliases: dict[str, str] = {}  # local name -> module it is bound to (candidates)
    nodes = list(_runtime_nodes(tree, type_checking=type_checking))
    for node in nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                imports.append(ImportRef(name, a.name, None, node.lineno))
                if a.asname:
                    aliases[a.asname] = a.name
                else:
                    aliases.setdefault(a.name.split(".")[0], a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            mod = _resolve(name, is_package, node.module, node.level)
            for a in node.names:
                imports.append(ImportRef(name, mod, a.name, node.lineno))
                aliases[a.asname or a.name] = f"{mod}.{a.name}"
    attrs: list[AttrRef] = []
    for node in nodes:
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and _is_private(node.attr)):
            attrs.append(AttrRef(name, aliases[node.value.id], node.attr, node.lineno))
    return ModuleInfo(name, path, is_package, tuple(imports), tuple(attrs))


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def scan_package(root: Path, *, type_checking: bool = False) -> dict[str, ModuleInfo]:
    """Every module under the package directory ``root`` (e.g. ``.../quicreality``)."""
    out: dict[str, ModuleInfo] = {}
    for path in sorted(root.rglob("*.py")):
        name = module_name(root, path)
        out[name] = parse_module(name, path.read_text(), is_package=path.name == "__init__.py",
                                 path=path, type_checking=type_checking)
    return out


def import_graph(modules: Mapping[str, ModuleInfo]) -> dict[str, set[str]]:
    """Module -> the modules of ``modules`` it imports (self-edges dropped)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for info in modules.values():
        for ref in info.imports:
            target = ref.module
            if ref.name is not None and f"{ref.module}.{ref.name}" in modules:
                target = f"{ref.module}.{ref.name}"  # a submodule: its parent is not used
            if target in modules and target != info.name:
                graph[info.name].add(target)
    return graph


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        # iterative Tarjan: (node, iterator over its successors)
        work: list[tuple[str, Iterator[str]]] = []
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        work.append((start, iter(sorted(graph.get(start, ())))))
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return sorted(out)


def private_imports(modules: Mapping[str, ModuleInfo]) -> list[str]:
    """``importer:line module.name`` for every ``_private`` name one module takes from another.

    Counts ``from m import _x`` and ``m._x`` through a name bound to a module of the package
    (``from pkg import m`` / ``import pkg.m as m``).  Private *modules* (``pkg._impl``) are the
    package's own business and are allowed inside that package.
    """
    found: list[str] = []
    for info in modules.values():
        for ref in info.imports:
            if ref.name is None or ref.module not in modules or ref.module == info.name:
                continue
            if _is_private(ref.name) and f"{ref.module}.{ref.name}" not in modules:
                found.append(f"{info.name}:{ref.lineno} {ref.module}.{ref.name}")
        for attr in info.attrs:
            if attr.module in modules and attr.module != info.name:
                found.append(f"{info.name}:{attr.lineno} {attr.module}.{attr.name}")
    return sorted(found)


def package_cycles(modules: Mapping[str, ModuleInfo], graph: Mapping[str, Iterable[str]]
                   ) -> list[list[str]]:
    """Cycles between the direct children of each package (modules and subpackages).

    A subpackage stands for everything inside it, so ``qlog.writer -> quic.errors`` and
    ``quic.connection -> qlog.sink`` make the cycle ``[qlog, quic]`` in the package above them
    even though no two modules import each other.
    """
    out: list[list[str]] = []
    for pkg in sorted(n for n, info in modules.items() if info.is_package):
        prefix = pkg + "."

        def child(mod: str, prefix: str = prefix) -> str | None:
            return prefix + mod[len(prefix):].split(".")[0] if mod.startswith(prefix) else None

        collapsed: dict[str, set[str]] = {}
        for src, dsts in graph.items():
            a = child(src)
            if a is None:
                continue
            for dst in dsts:
                b = child(dst)
                if b is not None and b != a:
                    collapsed.setdefault(a, set()).add(b)
        out.extend(cycles(collapsed))
    return out


def layer_violations(modules: Mapping[str, ModuleInfo], lower: Iterable[str],
                     upper: Iterable[str]) -> list[str]:
    """``importer:line -> module`` for every import from a package in ``lower`` into one in
    ``upper`` (dotted package names, e.g. ``quicreality.quic`` and ``quicreality.aio``)."""
    def within(mod: str, pkgs: Iterable[str]) -> bool:
        return any(mod == p or mod.startswith(p + ".") for p in pkgs)

    lower, upper = tuple(lower), tuple(upper)
    found = []
    for info in modules.values():
        if not within(info.name, lower):
            continue
        for ref in info.imports:
            target = ref.module if ref.name is None else f"{ref.module}.{ref.name}"
            if within(ref.module, upper) or within(target, upper):
                found.append(f"{info.name}:{ref.lineno} -> {target}")
    return sorted(found)
