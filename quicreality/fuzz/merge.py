"""``python -m quicreality.fuzz merge TARGET``: a campaign's new inputs into the seed corpus, minimised.

A campaign (``python -m quicreality.fuzz TARGET``) writes every input that reached new coverage to
``WORKDIR/corpus``: hundreds of files, many of them made redundant by later ones. :func:`merge`
keeps only those that add coverage to the seed corpus, with libFuzzer's own ``-merge=1`` run
through atheris (atheris hands libFuzzer flags on), on the same instrumented target:

1. candidates: the workdir's inputs of at most ``max_file_bytes`` bytes (default
   :data:`MAX_FILE_BYTES`) whose content is not already a seed; larger ones are skipped (seeds
   must stay small: the smoke test runs them all in CI);
2. libFuzzer merges them into a copy of the seed directory (``-merge=1 COPY CANDIDATES``): it runs
   the seeds first, then adds a candidate only if it brings new features, smallest first;
3. the added inputs are written to the seed directory under the corpus's names (first 16 hex
   digits of their SHA-1), smallest first, while the target's seeds stay under
   :data:`~quicreality.fuzz.corpus.MAX_TARGET_BYTES`.

libFuzzer's merge re-runs its own program in a child process (so that a crashing input does not
stop it) through ``system()``: the program it re-runs is :func:`write_launcher`'s small Python
script in the workdir, which calls :func:`libfuzzer_main` with libFuzzer's arguments as given.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .corpus import MAX_TARGET_BYTES

__all__ = ["MAX_FILE_BYTES", "MergeResult", "libfuzzer_main", "merge", "write_launcher"]

ROOT = Path(__file__).resolve().parents[2]
#: Largest input a merge adds to a seed corpus (the largest seeds today are ~6 KB).
MAX_FILE_BYTES = 8192


@dataclass(frozen=True)
class MergeResult:
    """What :func:`merge` did."""

    #: inputs in the workdir's corpus; skipped as too large; already seeds (same bytes)
    found: int
    too_large: int
    duplicates: int
    #: inputs handed to libFuzzer, and those it kept (new coverage)
    candidates: int
    kept: int
    #: written to the seed directory (kept, within the target's byte budget)
    added: int
    seeds_before: int
    seeds_after: int
    seed_bytes_after: int


def _name(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


def write_launcher(workdir: Path, target: str) -> Path:
    """An executable Python script that runs ``target`` under atheris with its arguments as
    libFuzzer arguments (the program libFuzzer's merge re-runs)."""
    path = workdir / f"libfuzzer-{target}"
    path.write_text(f"#!{sys.executable}\n"
                    "import os, sys\n"
                    "os.environ['QR_PURE'] = '1'  # atheris instruments Python code only\n"
                    f"sys.path.insert(0, {str(ROOT)!r})\n"
                    "from quicreality.fuzz.merge import libfuzzer_main\n"
                    f"sys.exit(libfuzzer_main({target!r}, sys.argv))\n")
    path.chmod(0o700)
    return path


def libfuzzer_main(target: str, argv: list[str]) -> int:
    """Run ``target``, instrumented, with ``argv`` (``argv[0]`` the launcher) as libFuzzer's
    command line. libFuzzer exits the process itself when it is done."""
    import atheris  # type: ignore[import-not-found,unused-ignore]

    from .harness import Crash, run_input

    with atheris.instrument_imports(include=["quicreality"]):
        from .targets import get

        t = get(target)
        fn = t.setup()

    def test_one_input(data: bytes) -> None:
        try:
            run_input(t, fn, data)
        except Crash as crash:
            print(f"CRASH {crash}", file=sys.stderr, flush=True)
            raise crash.error from None

    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
    return 0


def merge(target: str, seeds: Path, workdir: Path, *,
          max_file_bytes: int = MAX_FILE_BYTES, max_target_bytes: int = MAX_TARGET_BYTES,
          timeout: float = 3600.0) -> MergeResult:
    """Merge ``workdir/corpus`` into the seed directory ``seeds`` (see the module).

    Raises:
        RuntimeError: libFuzzer's merge failed (its output's tail is in the message).
    """
    from .targets import get

    get(target)  # an unknown target fails here, before anything is written
    seed_files = sorted(p for p in seeds.iterdir() if p.is_file()) if seeds.is_dir() else []
    seed_hashes = {hashlib.sha1(p.read_bytes()).digest() for p in seed_files}
    found = too_large = duplicates = 0
    stage = workdir / "merge"
    if stage.exists():
        shutil.rmtree(stage)
    into, cand = stage / "into", stage / "candidates"
    into.mkdir(parents=True)
    cand.mkdir()
    for p in seed_files:
        shutil.copyfile(p, into / p.name)
    for p in sorted((workdir / "corpus").iterdir()) if (workdir / "corpus").is_dir() else []:
        if not p.is_file():
            continue
        found += 1
        if p.stat().st_size > max_file_bytes:
            too_large += 1
            continue
        data = p.read_bytes()
        digest = hashlib.sha1(data).digest()
        if digest in seed_hashes:
            duplicates += 1
            continue
        seed_hashes.add(digest)
        (cand / _name(data)).write_bytes(data)
    candidates = len(list(cand.iterdir()))
    kept: list[bytes] = []
    if candidates:
        launcher = write_launcher(workdir, target)
        out = subprocess.run([str(launcher), "-merge=1", f"-max_len={max_file_bytes}",
                              f"-artifact_prefix={stage}/", str(into), str(cand)],
                             capture_output=True, text=True, timeout=timeout, check=False)
        launcher.unlink()
        if out.returncode != 0 or "MERGE-OUTER:" not in out.stderr:
            raise RuntimeError(f"libFuzzer merge failed ({out.returncode}): {out.stderr[-1500:]}")
        before = {hashlib.sha1(p.read_bytes()).digest() for p in seed_files}
        kept = [d for d in (p.read_bytes() for p in sorted(into.iterdir()) if p.is_file())
                if hashlib.sha1(d).digest() not in before]
    total = sum(p.stat().st_size for p in seed_files)
    added = 0
    seeds.mkdir(parents=True, exist_ok=True)
    for data in sorted(kept, key=len):
        if total + len(data) > max_target_bytes:
            break
        (seeds / _name(data)).write_bytes(data)
        total += len(data)
        added += 1
    shutil.rmtree(stage)
    after = [p for p in seeds.iterdir() if p.is_file()]
    return MergeResult(found=found, too_large=too_large, duplicates=duplicates,
                       candidates=candidates, kept=len(kept), added=added,
                       seeds_before=len(seed_files), seeds_after=len(after),
                       seed_bytes_after=sum(p.stat().st_size for p in after))
