"""The harness contract shared by every fuzz target, and a plain (not coverage-guided) runner.

A :class:`Target` is a name, the exception types its surface documents for bad input
(``expected``), and a ``setup`` that builds whatever state the target needs once and returns the
per-input function. :func:`run_input` calls that function and sorts the outcome: returning, or
raising one of the ``expected`` types, is fine; anything else is a :class:`Crash`. The harness
functions themselves also raise :class:`InvariantError` (an ``AssertionError``, so never expected)
when the code accepted an input but broke a property (a round trip that does not round-trip).

:func:`mutate` and :func:`replay` are the runner that the smoke tests (and machines without
atheris) use: every corpus file as is, then random mutations of them, deterministic per seed.
The coverage-guided runner is :mod:`quicreality.fuzz.__main__` with atheris.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Crash", "InvariantError", "ReplayResult", "Target", "Unexpected", "join_records",
           "must_not_raise", "mutate", "read_corpus", "replay", "run_input", "split_records"]

OneInput = Callable[[bytes], None]


class InvariantError(AssertionError):
    """The code under test accepted an input but broke a property the harness checks."""


@dataclass(frozen=True)
class Target:
    """One attack surface.

    Attributes:
        name: the command-line name (``python -m quicreality.fuzz NAME``).
        doc: one line for ``python -m quicreality.fuzz list``.
        setup: builds the target's state once; returns the function called per input.
        expected: the exception types the surface documents for hostile input.
        modules: the packages atheris should instrument for this target.
    """

    name: str
    doc: str
    setup: Callable[[], OneInput]
    expected: tuple[type[BaseException], ...] = ()
    modules: tuple[str, ...] = ("quicreality",)


class Unexpected(Exception):
    """Wraps an exception from a call that must not raise at all (an endpoint's receive path),
    so that it is a crash even when its type is one the target expects elsewhere."""


def must_not_raise(fn: Callable[..., object], *args: object) -> object:
    """Call ``fn(*args)``; any exception becomes :class:`Unexpected` (chained)."""
    try:
        return fn(*args)
    except Exception as exc:
        raise Unexpected(f"{type(exc).__name__}: {exc}") from exc


class Crash(Exception):
    """An input made the target raise something its surface does not document."""

    def __init__(self, target: str, data: bytes, error: BaseException) -> None:
        if isinstance(error, Unexpected) and error.__cause__ is not None:
            error = error.__cause__
        tb = traceback.extract_tb(error.__traceback__)
        self.where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
        super().__init__(f"{target}: {type(error).__name__} at {self.where}: {error}"[:400])
        self.target = target
        self.data = data
        self.error = error

    @property
    def key(self) -> tuple[str, str, str]:
        """(target, exception type, file:line): one bug, however many inputs reach it."""
        return (self.target, type(self.error).__name__, self.where)


def run_input(target: Target, one_input: OneInput, data: bytes) -> None:
    """Run one input; raise :class:`Crash` unless it returned or raised an expected error."""
    try:
        one_input(data)
    except target.expected:
        return
    except RecursionError as exc:  # a recursion bomb is a crash, and must not be swallowed
        raise Crash(target.name, data, exc) from exc
    except Exception as exc:
        raise Crash(target.name, data, exc) from exc


def read_corpus(directory: Path) -> list[bytes]:
    """The seed files of a corpus directory, in name order (an absent directory is empty)."""
    if not directory.is_dir():
        return []
    return [p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()]


_INTERESTING = (0, 1, 0x3F, 0x40, 0x7F, 0x80, 0xBF, 0xC0, 0xFF)


def mutate(r: random.Random, data: bytes, pool: Sequence[bytes] = ()) -> bytes:
    """A few random byte-level edits of ``data`` (flips, inserts, deletes, splices from ``pool``)."""
    b = bytearray(data)
    for _ in range(r.choice((1, 1, 2, 3, 5, 8))):
        if not b:
            b.append(r.randrange(256))
        i = r.randrange(len(b))
        op = r.randrange(9)
        if op == 0:
            b[i] = r.randrange(256)
        elif op == 1:
            b[i] ^= 1 << r.randrange(8)
        elif op == 2:
            del b[i:i + r.randrange(1, 16)]
        elif op == 3:
            b[i:i] = r.randbytes(r.randrange(1, 8))
        elif op == 4:
            b[i] = r.choice(_INTERESTING)
        elif op == 5:
            del b[i:]
        elif op == 6 and pool:
            other = r.choice(pool)
            j = r.randrange(len(other) + 1)
            b[i:i] = other[j:j + r.randrange(1, 64)]
        elif op == 7:
            b[i:i + 2] = r.choice((b"\xff\xff", b"\x00\x00", b"\x7f\xff", b"\x80\x00"))
        else:
            j = r.randrange(len(b))
            b[i:i] = b[j:j + r.randrange(1, 32)]
    return bytes(b)


@dataclass
class ReplayResult:
    """What :func:`replay` ran and found."""

    executions: int = 0
    seconds: float = 0.0
    crashes: dict[tuple[str, str, str], Crash] = field(default_factory=dict)


def replay(target: Target, seeds: Iterable[bytes], *, runs: int = 0, seconds: float = 0.0,
           seed: int = 0, one_input: OneInput | None = None) -> ReplayResult:
    """Run every seed, then mutations of them until ``runs`` inputs or ``seconds`` have passed.

    Crashes are collected (one per :attr:`Crash.key`), not raised.
    """
    fn = one_input if one_input is not None else target.setup()
    pool = list(seeds) or [b""]
    result = ReplayResult()
    r = random.Random(seed)
    start = time.monotonic()

    def one(data: bytes) -> None:
        result.executions += 1
        try:
            run_input(target, fn, data)
        except Crash as crash:
            result.crashes.setdefault(crash.key, crash)

    for data in pool:
        one(data)
    while (runs and result.executions < runs) or (
            seconds and time.monotonic() - start < seconds):
        one(mutate(r, r.choice(pool), pool))
    result.seconds = time.monotonic() - start
    return result


def split_records(data: bytes, limit: int = 64) -> list[bytes]:
    """Split an input into records ``[u16 length][bytes]`` (the last may be short); at most
    ``limit`` records. The structured targets (several datagrams, TLS flights, streams) use it."""
    out: list[bytes] = []
    pos = 0
    while pos < len(data) and len(out) < limit:
        n = int.from_bytes(data[pos:pos + 2], "big")
        out.append(data[pos + 2:pos + 2 + n])
        pos += 2 + n
    return out


def join_records(records: Iterable[bytes]) -> bytes:
    """The inverse of :func:`split_records` (for writing seeds)."""
    return b"".join(len(r).to_bytes(2, "big") + r for r in records)
