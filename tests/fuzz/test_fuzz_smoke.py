"""Every fuzz target, briefly, over its seed corpus (CI; the long runs are
``python -m quicreality.fuzz TARGET``, docs/security.md, "Fuzzing figures").

Each target first runs every seed unchanged, then random mutations of them for a couple of
seconds (deterministic per seed, no atheris needed). Any input that makes the target raise
something its surface does not document fails the test with the input in hex, to be turned into
a regression test in ``tests/unit/test_fuzz_regressions.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quicreality.fuzz.harness import Crash, InvariantError, Target, read_corpus, replay, run_input
from quicreality.fuzz.targets import TARGETS

CORPUS = Path(__file__).resolve().parent / "corpus"
#: Seconds of mutation per target (QR_FUZZ_SMOKE_SECONDS overrides).
SECONDS = float(os.environ.get("QR_FUZZ_SMOKE_SECONDS", "2"))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target_survives_its_corpus_and_mutations(name: str) -> None:
    seeds = read_corpus(CORPUS / name)
    assert seeds, f"no seed corpus in {CORPUS / name} (python -m quicreality.fuzz seed {name})"
    # At least 20 mutations however loaded the machine is, then mutations until SECONDS.
    result = replay(TARGETS[name], seeds, runs=len(seeds) + 20, seconds=SECONDS, seed=17)
    assert result.executions > len(seeds)
    found = [f"{c}\n  input: {c.data.hex()}" for c in result.crashes.values()]
    assert not found, "\n".join(found)


def test_every_target_has_a_corpus_and_the_corpus_stays_small() -> None:
    assert sorted(p.name for p in CORPUS.iterdir() if p.is_dir()) == sorted(TARGETS)
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    assert total < 5 * 1024 * 1024, total


def _planted(error: BaseException | None) -> Target:
    def setup():  # type: ignore[no-untyped-def]
        def one(data: bytes) -> None:
            if error is not None and data == b"boom":
                raise error
        return one
    return Target("planted", "a target with a planted bug", setup, (ValueError,))


def test_documented_errors_pass_and_anything_else_is_a_crash() -> None:
    run_input(_planted(ValueError("documented")), _planted(ValueError("x")).setup(), b"boom")
    for error in (KeyError("bug"), InvariantError("broken"), RecursionError("deep")):
        target = _planted(error)
        with pytest.raises(Crash) as info:
            run_input(target, target.setup(), b"boom")
        assert info.value.error is error and info.value.data == b"boom"
    found = replay(_planted(IndexError("bug")), [b"boom", b"fine"], runs=50)
    assert [k[1] for k in found.crashes] == ["IndexError"]


@pytest.mark.parametrize("name", ["qlog-loader", "pcap-loader"])
def test_file_loader_targets_create_no_file(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Their scratch file is in memory (memfd): a campaign leaves nothing in /dev/shm or /tmp."""
    def no_temp_files(*args: object, **kwargs: object) -> None:
        raise AssertionError("a temporary file was created")

    monkeypatch.setattr("tempfile.mkstemp", no_temp_files)
    seeds = read_corpus(CORPUS / name)
    result = replay(TARGETS[name], seeds, runs=len(seeds) + 20, seed=3)
    assert result.executions == len(seeds) + 20 and not result.crashes
