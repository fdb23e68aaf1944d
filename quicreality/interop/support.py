"""Which (peer, role, test case) cells are unsupported, asked of the adapters before a run.

Theory of operation
-------------------
A peer declares a case unsupported the QIR way: its adapter exits 127.  Learning that by
running the cell costs a link, two captures, the other peer's start and their teardown (2-3 s
per cell here).  So before the matrix runs, :meth:`SupportCache.learn` asks every adapter the
runner will start, in check-only mode (``QR_CHECK_ONLY=1``, see :mod:`.endpoint`): one
process per (peer, role) answers for all of that role's test cases at once
(``QR_CHECK_TESTCASES``), a few processes at a time.  The answers are cached for the run.

Only a 127 answer is used: such a cell gets its ``unsupported`` verdict without being started.
A supported answer, a malformed one (exit 2) or a check that failed to run says nothing, and the
cell runs as before, where a real 127 is still honoured.  So nothing is guessed: the verdict
is the adapter's own, from the same code (:func:`.adapters.plan`) and the same environment
keys (placeholder paths; a support answer depends only on the peer, role, test case and our
CLI's flags, which ``QR_OURS_FLAGS`` carries).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..scenarios.peers import paths
from .adapters import EXIT_UNSUPPORTED
from .endpoint import CHECK_ONLY_ENV, CHECK_TESTCASES_ENV

__all__ = ["Support", "SupportCache", "check_argv", "check_env", "parse_check_output"]

#: Placeholder URLs for a client's check (two: resumption and zerortt split them).
_CHECK_URLS = "https://10.99.2.2:443/check-a https://10.99.2.2:443/check-b"


@dataclass(frozen=True, slots=True)
class Support:
    """One adapter's answer: exit ``status`` (0, 127, 2; -1 = the check did not run)."""

    status: int
    reason: str = ""

    @property
    def unsupported(self) -> bool:
        """The adapter said 127."""
        return self.status == EXIT_UNSUPPORTED


def check_argv(peer: str) -> list[str]:
    """The adapter's argv (the same program the runner starts for a real run)."""
    return [sys.executable, "-m", "quicreality.interop.endpoint", peer]


def check_env(role: str, testcases: Iterable[str], common: Mapping[str, str]) -> dict[str, str]:
    """The check's environment: the contract's keys (placeholder paths), ``common`` (what every
    endpoint of the run gets, e.g. ``QR_OURS_FLAGS``), check-only and the test cases."""
    names = sorted(set(testcases))
    env = {**os.environ, **common, "ROLE": role, "TESTCASE": names[0] if names else "",
           CHECK_ONLY_ENV: "1", CHECK_TESTCASES_ENV: " ".join(names),
           "QR_PREFERRED": "10.99.2.3:4443", "QR_LISTEN": "0.0.0.0:443"}
    if role == "client":
        env["REQUESTS"] = _CHECK_URLS
    return env


def parse_check_output(text: str) -> dict[str, Support]:
    """The JSON lines of a batch check -> {testcase: Support} (other lines are ignored)."""
    out: dict[str, Support] = {}
    for line in text.splitlines():
        try:
            doc = json.loads(line)
            out[str(doc["testcase"])] = Support(int(doc["status"]), str(doc.get("reason", "")).strip())
        except (ValueError, KeyError, TypeError):
            continue
    return out


Runner = Callable[[list[str], dict[str, str]], "subprocess.CompletedProcess[str]"]


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, cwd=paths.REPO_ROOT, capture_output=True, text=True,
                          timeout=60, check=False, stdin=subprocess.DEVNULL)


class SupportCache:
    """The run's support answers, keyed by (peer, role, TESTCASE)."""

    def __init__(self, run: Runner = _run) -> None:
        self._run = run
        self._answers: dict[tuple[str, str, str], Support] = {}
        #: (peer, role) -> seconds its check took (for the timing notes)
        self.check_secs: dict[tuple[str, str], float] = {}

    def learn(self, wanted: Mapping[tuple[str, str], Iterable[str]],
              common: Mapping[str, str], *, workers: int = 2) -> None:
        """Ask each (peer, role) of ``wanted`` about its test cases (``workers`` at a time)."""
        def one(key: tuple[str, str], names: list[str]) -> None:
            peer, role = key
            t0 = time.monotonic()
            try:
                r = self._run(check_argv(peer), check_env(role, names, common))
                got = parse_check_output(r.stdout) if r.returncode == 0 else {}
            except (OSError, subprocess.SubprocessError):
                got = {}
            self.check_secs[key] = round(time.monotonic() - t0, 3)
            for tc in names:
                self._answers[(peer, role, tc)] = got.get(tc, Support(-1, "no answer"))

        todo = [(k, sorted(set(v))) for k, v in wanted.items()
                if any((k[0], k[1], tc) not in self._answers for tc in v)]
        with ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
            for f in [ex.submit(one, k, names) for k, names in todo if names]:
                f.result()

    def get(self, peer: str, role: str, testcase: str) -> Support | None:
        """The cached answer, or None if it was never asked."""
        return self._answers.get((peer, role, testcase))

    def unsupported(self, peer: str, role: str, testcase: str) -> str | None:
        """The adapter's reason if it answered 127, else None (run the cell)."""
        a = self.get(peer, role, testcase)
        return a.reason if a is not None and a.unsupported else None
