"""Pytest fixtures and a harness for tests that run real peers (loopback or netns).

It lives in ``tests/`` (it imports pytest; the package does not).  ``tests/interop/conftest.py``
re-exports the fixtures; tests import the types::

    from peers_harness import PeerHarness, Pki, WwwDir

Fixtures:

* ``pki`` (session): a CA + EC P-256 leaf for localhost/127.0.0.1/::1/10.77.x (:class:`Pki`).
* ``www`` (session): a served directory with ``10M.bin`` (10,000,000 seeded pseudo-random bytes)
  and ``index.html``; :class:`WwwDir` knows each file's sha256.
* ``udp_port``: a UDP port that was free on 127.0.0.1 a moment ago.
* ``peer_harness``: a :class:`PeerHarness` in a fresh temp dir; every process it started is
  stopped and the dir removed when the test ends, pass or fail (``QR_KEEP_TMP=1`` keeps it).

A missing peer raises :class:`~quicreality.scenarios.peers.paths.PeerNotInstalled` ("run
scripts/setup.sh"): the test fails, it is never skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from quicreality.scenarios.fingerprint_capture import LoopbackNamespace
from quicreality.scenarios.peers import get_peer
from quicreality.scenarios.peers.base import (
    Command,
    DownloadRequest,
    PeerSpec,
    ServeRequest,
    TransferResult,
    free_udp_port,
    sha256_file,
)
from quicreality.scenarios.peers.certs import make_test_cert
from quicreality.scenarios.peers.process import Finished, PeerFailed, PeerProcess

__all__ = [
    "DownloadOutcome",
    "PeerHarness",
    "Pki",
    "WwwDir",
    "in_namespace",
    "ns",
    "peer_harness",
    "pki",
    "udp_port",
    "www",
]


@dataclass(frozen=True, slots=True)
class Pki:
    """Paths of the test PKI."""

    dir: Path
    cert: Path
    key: Path
    ca: Path


@dataclass(frozen=True, slots=True)
class WwwDir:
    """A served directory and the sha256 of each file in it."""

    path: Path
    sha256: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, data: bytes) -> None:
        """Write ``name`` and record its sha256."""
        p = self.path / name
        p.write_bytes(data)
        self.sha256[name] = sha256_file(p)


def _mkdtemp(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def _rmtree(path: Path) -> None:
    if os.environ.get("QR_KEEP_TMP") == "1":
        print(f"QR_KEEP_TMP=1: keeping {path}")
        return
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pki() -> Iterator[Pki]:
    """CA + leaf certificate in a temp dir, removed at the end of the session."""
    d = _mkdtemp("qr-pki-")
    try:
        cert, key, ca = make_test_cert(d)
        yield Pki(dir=d, cert=cert, key=key, ca=ca)
    finally:
        _rmtree(d)


@pytest.fixture(scope="session")
def www() -> Iterator[WwwDir]:
    """``10M.bin`` (seeded pseudo-random) and ``index.html``, removed at the end."""
    d = _mkdtemp("qr-www-")
    try:
        w = WwwDir(path=d)
        w.add("10M.bin", random.Random(20261125).randbytes(10_000_000))
        w.add("index.html", b"<!doctype html><title>quicreality</title><p>hello h3</p>\n")
        yield w
    finally:
        _rmtree(d)


@pytest.fixture
def udp_port() -> int:
    """A free UDP port on 127.0.0.1."""
    return free_udp_port("127.0.0.1")


@dataclass(frozen=True, slots=True)
class DownloadOutcome:
    """A finished client run: the process and the parsed per-URL results."""

    finished: Finished
    results: list[TransferResult]
    request: DownloadRequest

    def describe(self) -> str:
        """For assertion messages."""
        return (f"rc={self.finished.returncode} secs={self.finished.secs:.3f}\n"
                f"results={self.results}\n--- stderr tail ---\n"
                + "\n".join(self.finished.stderr.splitlines()[-20:])
                + "\n--- stdout tail ---\n" + "\n".join(self.finished.stdout.splitlines()[-10:]))


class PeerHarness:
    """Starts peers in ``workdir``; :meth:`close` stops them all."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[PeerProcess] = []
        self._n = 0

    def path(self, *parts: str) -> Path:
        """A path inside the work dir."""
        return self.workdir.joinpath(*parts)

    def _name(self, base: str) -> str:
        self._n += 1
        return f"{self._n:02d}-{base}"

    def start(self, proc: PeerProcess) -> PeerProcess:
        """Start ``proc`` and track it for cleanup."""
        self.procs.append(proc)
        return proc.start()

    def serve(self, peer: str | PeerSpec, req: ServeRequest, *,
              ready_timeout: float = 15.0) -> PeerProcess:
        """Start ``peer``'s server and wait until it has bound ``req.port``."""
        spec = get_peer(peer) if isinstance(peer, str) else peer
        if spec.serve is None:
            raise ValueError(f"peer {spec.name} has no server")
        cmd = spec.serve(req)
        proc = self.start(PeerProcess(cmd, name=self._name(f"{spec.name}-server"),
                                      log_dir=self.path("logs")))
        proc.wait_udp_ready(req.port, timeout=ready_timeout)
        return proc

    def download(self, peer: str | PeerSpec, req: DownloadRequest, *,
                 timeout: float = 120.0) -> DownloadOutcome:
        """Run ``peer``'s client to completion and parse its output."""
        spec = get_peer(peer) if isinstance(peer, str) else peer
        if spec.download is None or spec.parse is None:
            raise ValueError(f"peer {spec.name} has no client")
        cmd = spec.download(req)
        proc = self.start(PeerProcess(cmd, name=self._name(f"{spec.name}-client"),
                                      log_dir=self.path("logs")))
        finished = proc.wait(timeout)
        return DownloadOutcome(finished, spec.parse(finished.stdout, finished.stderr, req), req)

    def close(self) -> None:
        """Stop every process (newest first)."""
        errors = []
        for proc in reversed(self.procs):
            try:
                proc.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others anyway
                errors.append(f"{proc.name}: {exc!r}")
        self.procs.clear()
        if errors:
            raise PeerFailed("could not stop: " + "; ".join(errors))


@contextlib.contextmanager
def harness_in_tempdir(prefix: str) -> Iterator[PeerHarness]:
    """A :class:`PeerHarness` in a fresh temp dir; its processes are stopped and the dir removed
    at the end (kept with ``QR_KEEP_TMP=1``). Module-scoped fixtures use it too."""
    d = _mkdtemp(prefix)
    h = PeerHarness(d)
    try:
        yield h
    finally:
        try:
            h.close()
        finally:
            _rmtree(d)


@pytest.fixture
def peer_harness() -> Iterator[PeerHarness]:
    """A :class:`PeerHarness` in a fresh temp dir; processes stopped, dir removed afterwards."""
    with harness_in_tempdir("qr-peers-") as h:
        yield h


def in_namespace(spec: PeerSpec, ns: LoopbackNamespace) -> PeerSpec:
    """``spec`` whose server and client commands run inside ``ns``."""
    def wrapped(build: Callable[[Any], Command] | None) -> Callable[[Any], Command] | None:
        if build is None:
            return None

        def run_inside(req: Any) -> Command:
            cmd = build(req)
            return dataclasses.replace(cmd, argv=ns.wrap(cmd.argv))

        return run_inside

    return dataclasses.replace(spec, serve=wrapped(spec.serve), download=wrapped(spec.download))


@pytest.fixture
def ns() -> Iterator[LoopbackNamespace]:
    """A fresh loopback namespace whose ``lo`` segments UDP GSO in software, so a capture there
    sees every datagram (on the host's ``lo`` a GSO send is one undecryptable super-datagram);
    deleted afterwards, with any process still in it."""
    with LoopbackNamespace() as space:
        yield space
