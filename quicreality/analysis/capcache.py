"""Per-file derived tables: a capture's QUIC tables and TCP segments, a qlog's events.

These are the loaders' own results, cached verbatim (:mod:`.cache`), so everything computed
from them is identical to the uncached path. Table names (in ``rep-<n>/derived/``), where
``<rel>`` is the raw file's path in the rep folder with ``/`` written as ``~``:

* ``pcap.<rel>.<h>.packets`` / ``pcap.<rel>.<h>.frames``: :func:`~.pcap.load_pcap`'s
  ``packets`` and ``frames`` (``server`` in the metadata); ``<h>`` is a short hash of the
  decryption arguments (key log, server port, decode-as rules);
* ``tcp.<rel>``: :func:`~.sources.tcp_payload` (TCP segments with payload);
* ``qlog.<rel>``: :func:`~.qlog.load_qlog` (the ``file`` column is re-set on read, so a moved
  run still names its own files).

:func:`derive_capture` fills the capture's tables with **one** tshark pass
(:func:`~.pcap.load_capture`) when any of them is missing or stale.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from . import cache
from .tshark_tables import PcapTables, load_capture, load_pcap_raw

__all__ = ["cached_pcap", "cached_qlog", "cached_tcp", "derive_capture"]


def _pcap_key(rc: cache.RepCache, pcap: Path, keylog: str | Path | None,
              server_port: int | None, decode_as: tuple[str, ...],
              ) -> tuple[str, dict[str, Any], list[Path]]:
    params = {"keylog": cache.rel_name(rc, keylog) if keylog else None,
              "server_port": server_port, "decode_as": list(decode_as)}
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    sources = [pcap, Path(keylog)] if keylog else [pcap]
    return f"pcap.{cache.rel_name(rc, pcap)}.{h}", params, sources


def _lookup_pcap(rc: cache.RepCache, name: str, params: dict[str, Any],
                 sources: list[Path]) -> PcapTables | None:
    pk = rc.lookup(name + ".packets", sources, params)
    if pk is None:
        return None
    fr = rc.lookup(name + ".frames", sources, params)
    if fr is None:
        return None
    server = pk.meta.get("server")
    return PcapTables(packets=pk.frame, frames=fr.frame,
                      server=(str(server[0]), int(server[1])) if server else None)


def _store_pcap(rc: cache.RepCache, name: str, params: dict[str, Any], sources: list[Path],
                tables: PcapTables, fp: list[dict[str, Any]]) -> None:
    meta = {"server": list(tables.server) if tables.server else None}
    rc.store(name + ".packets", tables.packets, sources, params, meta, fingerprints=fp)
    rc.store(name + ".frames", tables.frames, sources, params, meta, fingerprints=fp)


def cached_pcap(pcap: str | Path, *, keylog: str | Path | None = None,
                server_port: int | None = None, decode_as: Iterable[str] = (),
                timeout: float = 600.0) -> PcapTables:
    """:func:`~.pcap.load_pcap` through the rep's cache (plain tshark outside a rep)."""
    decode_as = tuple(decode_as)
    rc = cache.for_file(pcap)
    if rc is None:
        return load_pcap_raw(pcap, keylog=keylog, server_port=server_port,
                             decode_as=decode_as, timeout=timeout)
    name, params, sources = _pcap_key(rc, Path(pcap), keylog, server_port, decode_as)
    hit = _lookup_pcap(rc, name, params, sources)
    if hit is not None:
        return hit
    fp = cache.fingerprint(rc.rep_dir, sources)
    tables = load_pcap_raw(pcap, keylog=keylog, server_port=server_port, decode_as=decode_as,
                           timeout=timeout)
    _store_pcap(rc, name, params, sources, tables, fp)
    return tables


def cached_tcp(pcap: str | Path, timeout: float = 300.0) -> pd.DataFrame | None:
    """The cached TCP segment table of ``pcap``, or None (not derived, stale, no cache)."""
    rc = cache.for_file(pcap)
    if rc is None:
        return None
    hit = rc.lookup(f"tcp.{cache.rel_name(rc, pcap)}", [Path(pcap)])
    return hit.frame if hit is not None else None


def store_tcp(pcap: str | Path, seg: pd.DataFrame, fp: list[dict[str, Any]] | None = None,
              ) -> None:
    """Store ``seg`` as the TCP segment table of ``pcap`` (no-op outside a rep)."""
    rc = cache.for_file(pcap)
    if rc is not None:
        rc.store(f"tcp.{cache.rel_name(rc, pcap)}", seg, [Path(pcap)], fingerprints=fp)


def derive_capture(pcap: str | Path, *, keylog: str | Path | None = None,
                   timeout: float = 600.0) -> bool:
    """Make sure the QUIC tables (with ``keylog``) and the TCP table of ``pcap`` are cached.

    Runs one tshark pass if either is missing or stale. Returns True if it ran tshark.
    """
    rc = cache.for_file(pcap)
    if rc is None:
        return False
    p = Path(pcap)
    name, params, sources = _pcap_key(rc, p, keylog, None, ())
    have_quic = _lookup_pcap(rc, name, params, sources) is not None
    have_tcp = cached_tcp(p) is not None
    if have_quic and have_tcp:
        return False
    if not p.exists():
        return False  # pruned before it was derived: nothing to do
    fp = cache.fingerprint(rc.rep_dir, sources)
    tables, seg = load_capture(p, keylog=keylog, timeout=timeout)
    if not have_quic:
        _store_pcap(rc, name, params, sources, tables, fp)
    if not have_tcp:
        store_tcp(p, seg, fp[:1])
    return True


def cached_qlog(path: str | Path, load: Any) -> pd.DataFrame:
    """``load(path)`` (:func:`~.qlog.load_qlog`'s raw reader) through the rep's cache."""
    rc = cache.for_file(path)
    if rc is None:
        return load(path)  # type: ignore[no-any-return]
    name = f"qlog.{cache.rel_name(rc, path)}"

    def build() -> tuple[pd.DataFrame, dict[str, Any]]:
        df = load(path)
        return df, {}

    got = rc.get(name, [Path(path)], build)
    df = got.frame
    if len(df) and "file" in df.columns:
        df["file"] = str(Path(path))
    return df
