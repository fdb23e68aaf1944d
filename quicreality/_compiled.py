"""Which form of the mypyc-compiled modules this process runs: the extensions or their ``.py``.

:mod:`quicreality` calls :func:`activate` on import, before any submodule loads. The decision
(:func:`decide`) is all-or-nothing, because the modules of one mypyc group call each other
natively:

* no build in the checkout: pure Python, nothing to do;
* ``QR_PURE=1``: pure Python, with the extensions left in place; a :class:`PureFinder` at the
  front of ``sys.meta_path`` loads the ``.py`` of every compiled module;
* a stale build (a compiled source changed since ``python -m quicreality.build``, or extensions
  without a stamp): pure Python the same way, with one warning line on stderr, or ImportError
  when ``QR_MYPYC_STRICT=1`` (CI: a stale extension must not pass for a current one);
* ``python -m quicreality.fuzz``: pure Python, and ``QR_PURE=1`` for its children, since atheris
  instruments Python code only (a compiled module would be invisible to coverage);
* otherwise the extensions, which take precedence on import.

``python -m quicreality.build --status`` prints the active mode and why. This module is imported
by every process that imports quicreality, so it stays small: no argparse, no subprocess.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

#: The checkout root (the directory holding the ``quicreality`` package).
ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "quicreality"
#: Written by a build: ``{"sources": {module: sha256 of its .py}}``.
STAMP = PACKAGE / "_mypyc_stamp.json"
#: The prefix of the group's shared extension (``group_name`` in :mod:`quicreality.build`).
SHARED_PREFIX = "_native__mypyc."

#: The modules compiled, chosen by the profile (docs/performance.md): buffers, range sets, frame
#: codecs, header parse/build, packet protection, streams, the packet assembler and receiver, loss
#: recovery, and the connection core with its stream manager, spaces and path; then the per-packet
#: callees the compiled profile still showed interpreted: RTT, pacer, CUBIC, ECN validation, PN
#: skipping, DATAGRAM queues, key-update limits, PMTU probing and the path manager; then what
#: only a REALITY listener or the chrome hello runs (the gate, its hello reassembly, the chaos
#: Initial planner, the chrome hello's shaping and transport parameters): these raise REALITY
#: accept against plain TLS without touching the shared path (docs/reality.md, "Branch h11f").
MODULES: tuple[str, ...] = (
    "quicreality.wire.buffer",
    "quicreality.wire.rangeset",
    "quicreality.quic.frames.fast",
    "quicreality.quic.packet",
    "quicreality.quic.packet_builder",
    "quicreality.quic.crypto",
    "quicreality.quic.streams",
    "quicreality.quic.connection.assembler",
    "quicreality.quic.connection.receive",
    "quicreality.quic.recovery.loss",
    "quicreality.quic.connection.core",
    "quicreality.quic.connection.streams",
    "quicreality.quic.connection.spaces",
    "quicreality.quic.connection.path",
    "quicreality.quic.recovery.rtt",
    "quicreality.quic.recovery.pacer",
    "quicreality.quic.recovery.congestion.cubic",
    "quicreality.quic.connection.ecn",
    "quicreality.quic.connection.pn_skip",
    "quicreality.quic.connection.datagrams",
    "quicreality.quic.connection.key_update",
    "quicreality.quic.connection.pmtud",
    "quicreality.quic.connection.migration",
    "quicreality.reality.gate",
    "quicreality.reality.reassembly",
    "quicreality.quic.initial_layout",
    "quicreality.tls.chrome_hello",
    "quicreality.quic.fingerprint",
)
# The RTT estimator, the pacer and CUBIC are reset on a new path by their ``reset()`` method
# (LossRecovery.reset_path_state): re-running ``__init__`` in place is a no-op on a mypyc class.
# BBR (v1, v3) has no ``reset()`` and has its ``__init__`` re-run, so it stays interpreted
# (tests/unit/test_build.py checks both).

#: ``QR_PURE=1``: run the ``.py`` of the compiled modules. ``QR_MYPYC_STRICT=1``: a stale build
#: raises ImportError instead of falling back.
PURE_ENV = "QR_PURE"
STRICT_ENV = "QR_MYPYC_STRICT"
#: Set once the stale-build warning was printed, so that child processes do not print it again.
WARNED_ENV = "QR_MYPYC_STALE_WARNED"


def source_of(module: str, root: Path = ROOT) -> Path:
    """The ``.py`` file of a dotted module name under ``root``."""
    return root.joinpath(*module.split(".")).with_suffix(".py")


def recorded_modules(stamp: Path = STAMP) -> dict[str, str]:
    """``{module: sha256}`` from the build's stamp (empty when there is none or it is unreadable)."""
    try:
        sources = json.loads(stamp.read_text()).get("sources", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return dict(sources) if isinstance(sources, dict) else {}


def stale_modules(root: Path = ROOT, stamp: Path = STAMP,
                  modules: Sequence[str] = MODULES) -> list[str]:
    """Compiled modules whose source changed since the build, then the ``modules`` to compile
    that the build did not (a module added to the list since): empty when not built."""
    recorded = recorded_modules(stamp)
    stale = []
    for module, digest in recorded.items():
        src = source_of(module, root)
        if src.exists() and hashlib.sha256(src.read_bytes()).hexdigest() != digest:
            stale.append(module)
    if recorded:
        stale.extend(m for m in modules if m not in recorded and source_of(m, root).exists())
    return stale


def has_shared_extension(package: Path = PACKAGE) -> bool:
    """Whether the group's shared extension (every build leaves one) is in ``package``."""
    try:
        return any(n.startswith(SHARED_PREFIX) and n.endswith(".so") for n in os.listdir(package))
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class Mode:
    """The decision :func:`decide` returns.

    Attributes:
        compiled: True when the extensions are imported.
        reason: Why, in a few words (``--status`` prints it).
        pure_modules: The modules a :class:`PureFinder` must load from source (empty when none).
        warning: One line for stderr, or None.
    """

    compiled: bool
    reason: str
    pure_modules: tuple[str, ...] = ()
    warning: str | None = None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "no", "false")


def decide(environ: Mapping[str, str], *, building: bool = False, fuzzing: bool = False,
           root: Path = ROOT) -> Mode:
    """Pick compiled or pure for this process (see the module docstring).

    Args:
        environ: The process environment (``QR_PURE``, ``QR_MYPYC_STRICT``).
        building: True under ``python -m quicreality.build``, which must run to fix a stale build
            (never raises then, never warns).
        fuzzing: True under ``python -m quicreality.fuzz`` (pure, whatever the build).
        root: The checkout root.

    Raises:
        ImportError: On a stale build with ``QR_MYPYC_STRICT=1`` (unless ``building``).
    """
    package = root / "quicreality"
    stamp = package / STAMP.name
    has_stamp = stamp.exists()
    if not has_stamp and not has_shared_extension(package):
        return Mode(False, "no mypyc build in this checkout (python -m quicreality.build compiles)")
    compiled = tuple(dict.fromkeys((*recorded_modules(stamp), *MODULES)))
    if fuzzing:
        return Mode(False, "python -m quicreality.fuzz: atheris instruments Python code only",
                    compiled)
    if _truthy(environ.get(PURE_ENV)):
        return Mode(False, f"{PURE_ENV}=1: the .py of the {len(compiled)} compiled modules, "
                    "extensions left in place", compiled)
    stale = stale_modules(root, stamp) if has_stamp else []
    if has_stamp and not stale:
        return Mode(True, f"mypyc build up to date, {len(recorded_modules(stamp))} modules")
    what = (", ".join(m.removeprefix("quicreality.") for m in stale) + " changed or new" if stale
            else "extensions without a stamp")
    if _truthy(environ.get(STRICT_ENV)) and not building:
        raise ImportError(f"stale mypyc build ({what}; {STRICT_ENV}=1): run `python -m "
                          "quicreality.build` to rebuild, or `python -m quicreality.build --clean`")
    warning = None if building else (
        f"quicreality: stale mypyc build ({what}): running pure Python; "
        "`python -m quicreality.build` rebuilds")
    return Mode(False, f"stale mypyc build ({what}): pure Python fallback",
                compiled, warning)


class PureFinder(MetaPathFinder):
    """Loads the ``.py`` source of the given modules even when their extension sits next to it."""

    def __init__(self, modules: Sequence[str], root: Path = ROOT) -> None:
        self.modules = frozenset(modules)
        self.root = root

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        """A source-file spec for a listed module, else None (the normal finders decide)."""
        if fullname not in self.modules:
            return None
        src = source_of(fullname, self.root)
        return importlib.util.spec_from_file_location(fullname, src) if src.exists() else None


def main_module(argv: Sequence[str]) -> str | None:
    """The module of ``python [options] -m MODULE ...`` (``sys.orig_argv``), else None."""
    args = iter(argv[1:])
    for arg in args:
        if arg == "-m":
            return next(args, None)
        if arg.startswith("-m"):
            return arg[2:]
        if arg in ("-c", "-") or not arg.startswith("-"):
            return None
        if arg in ("-W", "-X", "--check-hash-based-pycs"):
            next(args, None)  # an option with its value in the next argument
    return None


#: The mode of this process, set by :func:`activate`.
active: Mode | None = None


def activate() -> Mode:
    """Decide once for this process, install the :class:`PureFinder` if needed, warn if needed."""
    global active
    if active is not None:
        return active
    entry = main_module(sys.orig_argv)
    fuzzing = entry == "quicreality.fuzz"
    if fuzzing:
        os.environ[PURE_ENV] = "1"  # the libFuzzer merge re-runs a launcher script: pure too
    mode = decide(os.environ, building=entry == "quicreality.build", fuzzing=fuzzing)
    if mode.pure_modules and not any(isinstance(f, PureFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, PureFinder(mode.pure_modules))
    if mode.warning and not os.environ.get(WARNED_ENV):
        print(mode.warning, file=sys.stderr)
        os.environ[WARNED_ENV] = "1"  # once per process tree: child processes fall back quietly
    active = mode
    return mode
