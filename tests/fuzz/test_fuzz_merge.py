"""``python -m quicreality.fuzz merge``: a real atheris campaign's inputs merged (libFuzzer
-merge=1) into a copy of a seed corpus; the corpus grows by fewer inputs than were offered, stays
within the size bounds, and still passes the smoke test's replay."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from quicreality.fuzz.harness import read_corpus, replay
from quicreality.fuzz.merge import merge
from quicreality.fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
TARGET = "relay-preface"


def test_merge_keeps_only_new_coverage_within_the_size_bounds(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    seeds = corpus / TARGET
    shutil.copytree(ROOT / "tests" / "fuzz" / "corpus" / TARGET, seeds)
    workdir = tmp_path / "work"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    campaign = subprocess.run(
        [sys.executable, "-m", "quicreality.fuzz", TARGET, "--runs", "1500",
         "--workdir", str(workdir), "--corpus", str(corpus)],
        capture_output=True, text=True, timeout=600, env=env, check=False)
    assert campaign.returncode == 0, campaign.stderr[-2000:]
    new = workdir / "corpus"
    found = sorted(new.iterdir())
    assert found, "the campaign found no new input"
    # Offered besides the campaign's own: a seed under another name, a file above the size
    # bound, and five inputs that take one path (mode 0, 9..13 empty records: k, k + 1, 2k and
    # 2k + 1 each stay in one of libFuzzer's counter buckets, 8-15 and 16-31).
    first_seed = sorted(seeds.iterdir())[0]
    shutil.copyfile(first_seed, new / "copy-of-a-seed")
    (new / "too-large").write_bytes(b"\x00" + os.urandom(9000))
    same_path = [b"\x00" + b"\x00\x00" * k for k in range(9, 14)]
    for i, data in enumerate(same_path):
        (new / f"same-path-{i}").write_bytes(data)
    before = {p.name: p.read_bytes() for p in seeds.iterdir()}

    result = merge(TARGET, seeds, workdir)
    print(result)

    assert result.found == len(found) + 7
    assert result.too_large == 1 and result.duplicates >= 1
    assert 0 < result.kept < result.candidates  # libFuzzer dropped the redundant ones
    assert result.added == result.kept  # far below the byte budget
    after = {p.name: p.read_bytes() for p in seeds.iterdir()}
    assert result.seeds_after == len(after) == len(before) + result.added
    assert all(after[name] == data for name, data in before.items())  # seeds untouched
    added = [d for n, d in after.items() if n not in before]
    assert all(len(d) <= 8192 for d in added)
    assert all(n == hashlib.sha1(d).hexdigest()[:16] for n, d in after.items() if n not in before)
    assert sum(d in same_path for d in added) <= 1
    assert not (workdir / "merge").exists() and not list(workdir.glob("libfuzzer-*"))
    # The merged corpus is what the smoke test loads: every seed runs, nothing crashes.
    merged = read_corpus(seeds)
    run = replay(TARGETS[TARGET], merged, runs=len(merged) + 20, seed=17)
    assert run.executions >= len(merged) + 20 and not run.crashes


def test_merge_of_an_empty_workdir_changes_nothing(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    shutil.copytree(ROOT / "tests" / "fuzz" / "corpus" / TARGET, seeds)
    n = len(list(seeds.iterdir()))
    result = merge(TARGET, seeds, tmp_path / "work")
    assert (result.found, result.candidates, result.added) == (0, 0, 0)
    assert result.seeds_after == n == len(list(seeds.iterdir()))
