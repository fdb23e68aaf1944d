"""``python -m quicreality.build``: compile the hot pure-Python modules with mypyc, in place (opt-in).

The compiled extension (``<module>.cpython-*.so`` next to each ``.py``, plus one shared
``quicreality/_native__mypyc*.so``) takes precedence on import; without it the
``.py`` is imported, and both behave the same (the unit+sim suite runs against both, see
docs/performance.md). ``python -c 'import quicreality.wire.buffer as b; print(b.__file__)'`` tells
which one is in use, as does ``python -m quicreality.build --status``.

A build writes ``quicreality/_mypyc_stamp.json`` with the SHA-256 of every compiled source; on
import, :mod:`quicreality` refuses to run when a compiled module's source has changed since (a stale
extension would silently run old code): rebuild, or ``--clean`` to go back to pure Python.
``QR_MYPYC=1 scripts/setup.sh`` runs the build after installing.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "quicreality"
STAMP = PACKAGE / "_mypyc_stamp.json"

#: The modules compiled, chosen by the profile (docs/performance.md): buffers, range sets, frame
#: codecs, header parse/build, packet protection, streams, the packet assembler and receiver, loss
#: recovery, and the connection core with its stream manager, spaces and path.
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
)
# Not compiled: recovery.rtt, recovery.pacer and the congestion controllers. A new path re-runs
# their ``__init__`` in place (LossRecovery.reset_path_state), which is a no-op on a mypyc class.


def source_of(module: str) -> Path:
    """The ``.py`` file of a dotted module name under this checkout."""
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compiled_files() -> list[Path]:
    """The extension files in the package: every module's and the shared one, including those of
    modules a previous build compiled that :data:`MODULES` no longer lists."""
    return sorted(PACKAGE.rglob("*.cpython-*.so"))


def stale_modules() -> list[str]:
    """Compiled modules whose source changed since the build (empty when not built)."""
    if not STAMP.exists():
        return []
    recorded = json.loads(STAMP.read_text()).get("sources", {})
    return [m for m, digest in recorded.items()
            if source_of(m).exists() and _sha256(source_of(m)) != digest]


def clean() -> int:
    """Remove every extension and the stamp; returns how many files went."""
    files = compiled_files() + ([STAMP] if STAMP.exists() else [])
    for path in files:
        path.unlink()
    return len(files)


def build() -> None:
    """Compile :data:`MODULES` with mypyc (in a scratch dir for the C sources) and record the stamp.

    Raises RuntimeError with mypyc's output if it fails; the checkout is then left pure Python."""
    clean()
    scratch = Path(tempfile.mkdtemp(prefix="qr-mypyc-"))
    try:
        argv = [sys.executable, "-c",
                "import sys; from setuptools import setup; from mypyc.build import mypycify; "
                "a = sys.argv[1:]; sys.argv = ['setup.py', 'build_ext', '--inplace', '--build-temp', a[0], "
                "'--build-lib', a[0] + '/lib']; "
                "setup(name='quicreality-mypyc', ext_modules=mypycify(a[1:], opt_level='3', "
                "group_name='quicreality._native', target_dir=a[0]))",
                str(scratch), *(str(source_of(m).relative_to(ROOT)) for m in MODULES)]
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            clean()
            raise RuntimeError(f"mypyc failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}"
                               f"\n{proc.stderr[-3000:]}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    STAMP.write_text(json.dumps({"sources": {m: _sha256(source_of(m)) for m in MODULES}}, indent=1))


def status() -> list[tuple[str, bool]]:
    """(module, imported from a compiled extension) for every module of :data:`MODULES`."""
    return [(m, not str(importlib.import_module(m).__file__).endswith(".py")) for m in MODULES]


def main(argv: list[str] | None = None) -> int:
    """Build, clean or report."""
    ap = argparse.ArgumentParser(prog="python -m quicreality.build", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--clean", action="store_true", help="remove the extensions: pure Python again")
    g.add_argument("--status", action="store_true", help="print which modules import compiled")
    g.add_argument("--check", action="store_true",
                   help="exit 0 if a build is present and up to date with the sources, else 1")
    args = ap.parse_args(argv)
    if args.check:
        ok = STAMP.exists() and bool(compiled_files()) and not stale_modules()
        print("mypyc build up to date" if ok else "no up-to-date mypyc build")
        return 0 if ok else 1
    if args.clean:
        print(f"removed {clean()} files; {len(MODULES)} modules are pure Python")
        return 0
    if args.status:
        for module, native in status():
            print(f"{module:40s} {'mypyc' if native else 'python'}")
        return 0
    try:
        import mypyc  # noqa: F401  (shipped with mypy, in the dev extras)
    except ImportError:
        print("error: mypyc is not installed (pip install mypy)", file=sys.stderr)
        return 2
    if stale_modules():
        print("the existing build is stale: rebuilding")
    print(f"compiling {len(MODULES)} modules with mypyc (about a minute) ...", flush=True)
    try:
        build()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"built {len(compiled_files())} extensions; stamp {STAMP.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
