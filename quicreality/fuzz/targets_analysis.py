"""Fuzz targets for the analysis loaders, which users feed captures from anywhere.

* ``qlog-loader``: the bytes are a qlog file (JSON, JSON-SEQ or NDJSON) for
  :func:`~quicreality.analysis.qlog.load_qlog`, then its frame and metric tables. Documented:
  ``ValueError`` (``load_qlogs`` skips such a file with a warning, as it does ``OSError``).
* ``pcap-loader``: the bytes are a pcap/pcapng file for
  :func:`~quicreality.analysis.pcapfile.read_udp`; documented: ``ValueError`` (not a capture).

Each input is written to one reused file under ``/dev/shm`` (or the temporary directory).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .harness import Target

__all__ = ["TARGETS"]


def _scratch(suffix: str) -> Path:
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    fd, name = tempfile.mkstemp(prefix="qr-fuzz-", suffix=suffix, dir=base)
    os.close(fd)
    return Path(name)


def _qlog() -> Callable[[bytes], None]:
    from ..analysis.qlog import frames_table, load_qlog, metrics_table

    path = _scratch(".sqlog")

    def one(data: bytes) -> None:
        path.write_bytes(data)
        events = load_qlog(path)
        frames_table(events)
        metrics_table(events)

    return one


def _pcap() -> Callable[[bytes], None]:
    from ..analysis.pcapfile import read_udp

    path = _scratch(".pcap")

    def one(data: bytes) -> None:
        path.write_bytes(data)
        for _ in read_udp(path):
            pass

    return one


TARGETS = (
    Target("qlog-loader", "the analysis qlog loader (load_qlog, frames_table, metrics_table)",
           _qlog, (ValueError,), ("quicreality.analysis",)),
    Target("pcap-loader", "the analysis pcap/pcapng reader (read_udp)",
           _pcap, (ValueError,), ("quicreality.analysis",)),
)
