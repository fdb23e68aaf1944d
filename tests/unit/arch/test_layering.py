"""Layering: the sans-IO core never imports the edge (asyncio, runner, benchmarks, analysis).

The core (``wire, quic, tls, h3, qlog, reality, relay``) is driven by the edge, never the other
way round: no import of ``aio``, ``scenarios``, ``bench``, ``analysis``, the CLI or the
Prometheus endpoint (``metrics``), not even under ``if TYPE_CHECKING:``.  And ``tls`` never
imports ``reality``: REALITY plugs into TLS through ``CertificateSource`` / ``PeerVerifier``
(docs/architecture.md, "Where REALITY plugs in").
"""

from __future__ import annotations

from pathlib import Path

import pytest
from archgraph import ModuleInfo, layer_violations, parse_module, scan_package

ROOT = Path(__file__).resolve().parents[3] / "quicreality"
CORE = tuple(f"quicreality.{p}" for p in ("wire", "quic", "tls", "h3", "qlog", "reality", "relay"))
EDGE = tuple(f"quicreality.{p}" for p in ("aio", "scenarios", "bench", "analysis", "cli",
                                          "__main__", "metrics"))

#: (lower layer, packages it must not import, why)
RULES = [
    (CORE, EDGE, "the sans-IO core is driven by the edge"),
    (("quicreality.tls",), ("quicreality.reality",), "REALITY plugs into TLS via interfaces"),
]


@pytest.fixture(scope="module")
def modules() -> dict[str, ModuleInfo]:
    """The package, ``if TYPE_CHECKING:`` imports included."""
    return scan_package(ROOT, type_checking=True)


def test_edge_packages_exist() -> None:
    for name in (*CORE, *EDGE):
        rel = name.removeprefix("quicreality.").replace(".", "/")
        assert (ROOT / rel).is_dir() or (ROOT / f"{rel}.py").is_file(), name


@pytest.mark.parametrize(("lower", "upper", "why"), RULES, ids=["core-edge", "tls-reality"])
def test_layer_does_not_import_upward(modules: dict[str, ModuleInfo], lower: tuple[str, ...],
                                      upper: tuple[str, ...], why: str) -> None:
    assert layer_violations(modules, lower, upper) == [], why


def test_checker_finds_upward_imports_in_every_form() -> None:
    srcs = {
        "quicreality.quic.a": "import quicreality.aio.udp\n",
        "quicreality.quic.b": "from quicreality import scenarios\n",
        "quicreality.quic.c": "def f():\n    from ..bench.transfer import run\n",
        "quicreality.quic.d": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                               "    from ..analysis import views\n"),
        "quicreality.quic.e": "from ..wire.buffer import Buffer\nfrom . import a\n",
        "quicreality.aio.udp": "from ..quic import a\n",
    }
    mods = {n: parse_module(n, s, is_package=False, type_checking=True) for n, s in srcs.items()}
    assert layer_violations(mods, CORE, EDGE) == [
        "quicreality.quic.a:1 -> quicreality.aio.udp",
        "quicreality.quic.b:1 -> quicreality.scenarios",
        "quicreality.quic.c:2 -> quicreality.bench.transfer.run",
        "quicreality.quic.d:3 -> quicreality.analysis.views",
    ]


def test_checker_flags_a_planted_import_in_a_copy_of_the_package(tmp_path: Path) -> None:
    pkg = tmp_path / "quicreality"
    for rel in ("__init__.py", "quic/__init__.py", "quic/packet.py", "aio/__init__.py",
                "aio/udp.py"):
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text((ROOT / rel).read_text())
    assert layer_violations(scan_package(pkg, type_checking=True), CORE, EDGE) == []
    planted = pkg / "quic" / "packet.py"
    planted.write_text(planted.read_text() + "\n\ndef _planted() -> None:\n"
                       "    from ..aio import udp  # noqa: F401\n")
    found = layer_violations(scan_package(pkg, type_checking=True), CORE, EDGE)
    assert len(found) == 1 and found[0].endswith("-> quicreality.aio.udp"), found
