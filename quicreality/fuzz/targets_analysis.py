"""Fuzz targets for the analysis loaders, which users feed captures from anywhere.

* ``qlog-loader``: the bytes are a qlog file (JSON, JSON-SEQ or NDJSON) for
  :func:`~quicreality.analysis.qlog.load_qlog`, then its frame and metric tables. Documented:
  ``ValueError`` (``load_qlogs`` skips such a file with a warning, as it does ``OSError``).
* ``pcap-loader``: the bytes are a pcap/pcapng file for
  :func:`~quicreality.analysis.pcapfile.read_udp`; documented: ``ValueError`` (not a capture).

Each input is written to one reused in-memory file (``memfd_create``, read through
``/proc/self/fd/N``), which leaves nothing behind when the process ends (libFuzzer ends it with
``exit()``, so no clean-up at exit would run); without ``memfd_create``, a file in the temporary
directory.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .harness import Target

__all__ = ["TARGETS"]


class _Scratch:
    """One file that holds the current input: :meth:`put` replaces its contents."""

    def __init__(self, suffix: str) -> None:
        if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
            self.fd = os.memfd_create(f"qr-fuzz{suffix}")
            self.path = Path(f"/proc/self/fd/{self.fd}")
        else:  # pragma: no cover - not Linux
            self.fd, name = tempfile.mkstemp(prefix="qr-fuzz-", suffix=suffix)
            self.path = Path(name)

    def put(self, data: bytes) -> Path:
        """Make ``data`` the file's whole contents; returns the path to read it by."""
        os.ftruncate(self.fd, 0)
        done = 0
        while done < len(data):
            done += os.pwrite(self.fd, data[done:], done)
        return self.path


def _qlog() -> Callable[[bytes], None]:
    from ..analysis.qlog import frames_table, load_qlog, metrics_table

    scratch = _Scratch(".sqlog")

    def one(data: bytes) -> None:
        events = load_qlog(scratch.put(data))
        frames_table(events)
        metrics_table(events)

    return one


def _pcap() -> Callable[[bytes], None]:
    from ..analysis.pcapfile import read_udp

    scratch = _Scratch(".pcap")

    def one(data: bytes) -> None:
        for _ in read_udp(scratch.put(data)):
            pass

    return one


TARGETS = (
    Target("qlog-loader", "the analysis qlog loader (load_qlog, frames_table, metrics_table)",
           _qlog, (ValueError,), ("quicreality.analysis",)),
    Target("pcap-loader", "the analysis pcap/pcapng reader (read_udp)",
           _pcap, (ValueError,), ("quicreality.analysis",)),
)
