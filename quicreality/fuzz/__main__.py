"""``python -m quicreality.fuzz``: list, fuzz (atheris), replay, seed, merge (docs/security.md, fuzzing).

    python -m quicreality.fuzz list
    python -m quicreality.fuzz TARGET [--runs N] [--seconds S] [--plain] [--workdir DIR]
    python -m quicreality.fuzz TARGET --replay FILE...
    python -m quicreality.fuzz seed [TARGET...] [--out DIR]
    python -m quicreality.fuzz merge TARGET [--workdir DIR] [--max-file-bytes N]

Fuzzing with atheris writes new inputs to ``WORKDIR/corpus`` (default ``/tmp/qr-fuzz/TARGET``)
and a crashing input to ``WORKDIR/crash-*``; the seed corpus in ``tests/fuzz/corpus/TARGET`` is
read, never written. ``--plain`` uses the random mutation runner instead (no coverage feedback).
``merge`` is the one command that writes the seed corpus (``--corpus``): it adds the workdir's
inputs that bring new coverage (libFuzzer's -merge=1 through atheris), each at most
``--max-file-bytes`` (default 8192), within the target's 400,000-byte seed budget.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CORPUS = ROOT / "tests" / "fuzz" / "corpus"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m quicreality.fuzz", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", help="a target name, 'list', 'seed' or 'merge'")
    p.add_argument("names", nargs="*", help="seed: targets to seed (default all); merge: the target")
    p.add_argument("--runs", type=int, default=0, help="stop after N inputs")
    p.add_argument("--seconds", type=float, default=0.0, help="stop after S seconds")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="seed corpora root")
    p.add_argument("--workdir", type=Path, default=None, help="new inputs and crashes go here")
    p.add_argument("--plain", action="store_true", help="random mutation, no atheris")
    p.add_argument("--seed", type=int, default=0, help="--plain: the random seed")
    p.add_argument("--replay", nargs="+", type=Path, default=None, help="run these inputs once")
    p.add_argument("--out", type=Path, default=DEFAULT_CORPUS, help="seed: where to write")
    p.add_argument("--max-len", type=int, default=0, help="atheris: longest input (0: libFuzzer's)")
    p.add_argument("--max-file-bytes", type=int, default=8192,
                   help="merge: largest input added to the seed corpus")
    return p


def _replay(name: str, files: list[Path]) -> int:
    from .harness import Crash, run_input
    from .targets import get

    target = get(name)
    fn = target.setup()
    bad = 0
    for f in files:
        try:
            run_input(target, fn, f.read_bytes())
            print(f"{f}: ok")
        except Crash as crash:
            bad += 1
            print(f"{f}: CRASH {crash}")
            traceback.print_exception(crash.error)
    return 1 if bad else 0


def _plain(name: str, args: argparse.Namespace) -> int:
    from .harness import read_corpus, replay
    from .targets import get

    target = get(name)
    seeds = read_corpus(args.corpus / name)
    if not args.runs and not args.seconds:
        args.runs = 10_000
    result = replay(target, seeds, runs=args.runs, seconds=args.seconds, seed=args.seed)
    workdir = args.workdir or Path("/tmp/qr-fuzz") / name
    for crash in result.crashes.values():
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / f"crash-{crash.key[1]}-{crash.key[2].replace(':', '_')}"
        path.write_bytes(crash.data)
        print(f"CRASH {crash} -> {path}")
    print(f"{name}: {result.executions} inputs in {result.seconds:.1f} s, "
          f"{len(result.crashes)} distinct crashes")
    return 1 if result.crashes else 0


def _atheris(name: str, args: argparse.Namespace) -> int:
    try:
        import atheris  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        print("atheris is not installed (pip install atheris, or use --plain)", file=sys.stderr)
        return 2
    from .harness import Crash, run_input

    with atheris.instrument_imports(include=["quicreality"]):
        from .targets import get

        target = get(name)
        fn = target.setup()

    def test_one_input(data: bytes) -> None:
        try:
            run_input(target, fn, data)
        except Crash as crash:
            print(f"CRASH {crash}", file=sys.stderr, flush=True)
            raise crash.error from None

    workdir = args.workdir or Path("/tmp/qr-fuzz") / name
    (workdir / "corpus").mkdir(parents=True, exist_ok=True)
    argv = [sys.argv[0], str(workdir / "corpus")]
    seeds = args.corpus / name
    if seeds.is_dir():
        argv.append(str(seeds))
    argv.append(f"-artifact_prefix={workdir}/")
    argv.append("-print_final_stats=1")
    if args.runs:
        argv.append(f"-runs={args.runs}")
    if args.seconds:
        argv.append(f"-max_total_time={int(args.seconds)}")
    if args.max_len:
        argv.append(f"-max_len={args.max_len}")
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
    return 0


def _merge(args: argparse.Namespace) -> int:
    from .merge import merge
    from .targets import TARGETS

    if len(args.names) != 1 or args.names[0] not in TARGETS:
        print("merge needs one target (python -m quicreality.fuzz list)", file=sys.stderr)
        return 2
    name = args.names[0]
    workdir = args.workdir or Path("/tmp/qr-fuzz") / name
    r = merge(name, args.corpus / name, workdir, max_file_bytes=args.max_file_bytes)
    print(f"{name}: {r.found} inputs in {workdir / 'corpus'}: {r.too_large} larger than "
          f"{args.max_file_bytes} B, {r.duplicates} already seeds; libFuzzer kept {r.kept} of "
          f"{r.candidates} (new coverage); added {r.added}: {r.seeds_before} -> {r.seeds_after} "
          f"seeds, {r.seed_bytes_after} B")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.target == "list":
        from .targets import TARGETS

        for t in TARGETS.values():
            print(f"{t.name:18} {t.doc}")
        return 0
    if args.target == "seed":
        from .corpus import write_corpora

        for name, count, size in write_corpora(args.out, args.names or None):
            print(f"{name:18} {count:4} seeds {size:8} bytes")
        return 0
    if args.target == "merge":
        return _merge(args)
    if args.replay:
        return _replay(args.target, args.replay)
    if args.plain:
        return _plain(args.target, args)
    return _atheris(args.target, args)


if __name__ == "__main__":
    sys.exit(main())
