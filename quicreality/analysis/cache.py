"""The derived-data cache: Parquet tables in ``rep-<n>/derived/``, keyed by the raw files.

Theory of operation
-------------------
Every expensive loader result of a rep (the tables of a capture, the events of a qlog, the
goodput slices the verdict uses ...) is written once as ``rep-<n>/derived/<name>.parquet`` and
read back on every later load. Each file is self-describing: its Parquet key-value metadata
(``quicreality`` key) holds

* ``version`` (:data:`VERSION`, bumped whenever a derived table's definition changes) and the
  table's ``name`` and ``params`` (e.g. which key log decrypted it);
* ``sources``: the raw files it was computed from, relative to the rep folder, with their size
  and ``mtime_ns``;
* ``meta``: small results that are not a table (e.g. where the slices came from);
* ``codecs``: columns stored as JSON text (nested lists/dicts, tuples) and decoded on read.

A table is **valid** when its version and params match and every source that still exists has
the recorded size and mtime; a source that is gone was **pruned** (captures deleted to save
disk) and the derived copy is then the only one, so it is served. A source that changed (a
re-captured rep) makes the table stale: it is re-derived, never served stale. A table that
cannot be read (corrupt, truncated) is rebuilt with a :class:`CacheWarning`. Writes go to a
temporary file in the same folder and are renamed into place (atomic on POSIX), so readers see
the old table or the new one, never half of one; a folder that cannot be written (a read-only
run) just means nothing is cached.

Only files inside a ``rep-<n>`` folder are cached (:func:`rep_dir_of`). ``QR_ANALYSIS_CACHE=0``
(or :func:`disabled`) turns the cache off: every loader then computes from the raw files, as
before the cache existed (the tests compare the two paths).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "CACHE_ENV",
    "DERIVED_DIR",
    "VERSION",
    "CacheWarning",
    "Cached",
    "RepCache",
    "disabled",
    "enabled",
    "fingerprint",
    "rep_dir_of",
]

#: Folder of the derived tables inside each rep folder.
DERIVED_DIR = "derived"
#: Environment variable: ``0``/``off``/``no``/``false`` disables the cache.
CACHE_ENV = "QR_ANALYSIS_CACHE"
#: Version of the derived tables' definitions; a table of another version is re-derived.
VERSION = 1
_META_KEY = b"quicreality"
try:  # orjson (a Jupyter dependency) parses the JSON columns ~3x faster; optional
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover
    _fast_loads = json.loads  # type: ignore[assignment]
_REP_RE = re.compile(r"^rep-\d+$")
_local = threading.local()


class CacheWarning(UserWarning):
    """A derived table was unreadable (and rebuilt) or could not be written."""


def enabled() -> bool:
    """True unless ``$QR_ANALYSIS_CACHE`` is off or :func:`disabled` is active."""
    if getattr(_local, "off", 0):
        return False
    return os.environ.get(CACHE_ENV, "1").strip().lower() not in ("0", "off", "no", "false")


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Compute everything from the raw files inside this block (no reads, no writes)."""
    _local.off = getattr(_local, "off", 0) + 1
    try:
        yield
    finally:
        _local.off -= 1


def rep_dir_of(path: str | Path) -> Path | None:
    """The ``rep-<n>`` folder that holds ``path`` (or is ``path``), else None."""
    p = Path(path).absolute()
    for d in (p, *p.parents):
        if _REP_RE.match(d.name):
            return d
    return None


def fingerprint(rep_dir: Path, paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """``[{rel, size, mtime_ns}]`` of ``paths`` relative to ``rep_dir`` (missing: size -1)."""
    out = []
    for p in paths:
        p = Path(p)
        try:
            rel = str(p.absolute().relative_to(rep_dir.absolute()))
        except ValueError:
            rel = str(p.absolute())
        try:
            st = p.stat()
            out.append({"rel": rel, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
        except OSError:
            out.append({"rel": rel, "size": -1, "mtime_ns": -1})
    return out


@dataclass(frozen=True)
class Cached:
    """A table read from (or just written to) the cache, with its metadata."""

    frame: pd.DataFrame
    meta: dict[str, Any]
    sources: list[dict[str, Any]]


# -- column codecs ------------------------------------------------------------------------------

def _has_tuple(v: Any) -> bool:
    if isinstance(v, tuple):
        return True
    if isinstance(v, list):
        return any(_has_tuple(x) for x in v)
    if isinstance(v, dict):
        return any(_has_tuple(x) for x in v.values())
    return False


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return {"__t": [_jsonable(x) for x in v]}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):  # numpy scalars
        return v.item()
    return v


def _unjson(v: Any) -> Any:
    if isinstance(v, dict):
        if len(v) == 1 and "__t" in v:
            return tuple(_unjson(x) for x in v["__t"])
        return {k: _unjson(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_unjson(x) for x in v]
    return v


def _list_of_flat_tuples(v: Any) -> bool:
    return isinstance(v, list) and all(
        isinstance(x, tuple) and not any(isinstance(y, (list, tuple, dict)) for y in x)
        for x in v)


def _needs_json(s: pd.Series) -> bool:
    if s.dtype != object:
        return False
    kinds = {type(v) for v in s if v is not None and not (isinstance(v, float) and math.isnan(v))}
    if any(k in (list, tuple, dict) for k in kinds):
        return True
    if len(kinds) > 1 and not kinds <= {int, float, bool}:
        return True  # mixed types (str and int): Arrow cannot hold them in one column
    try:
        pa.array(s, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return True
    return False


def _encode(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Columns Arrow cannot hold as they are → JSON text, and how to decode each.

    Codecs: ``json`` (plain JSON: lists, dicts, scalars), ``json-lt`` (a list of flat tuples,
    e.g. ACK ranges), ``json-t`` (tuples anywhere, tagged).
    """
    codecs: dict[str, str] = {}
    out = df
    for c in df.columns:
        if not _needs_json(df[c]):
            continue
        if out is df:
            out = df.copy()
        alias = _alias_of(df, str(c))
        if alias is not None:  # stored once, in the other column: decoded once, shared
            out[c] = [None] * len(df)
            codecs[str(c)] = f"alias:{alias}"
            continue
        vals = [v for v in df[c] if v is not None]
        if not any(_has_tuple(v) for v in vals):
            codec, conv = "json", (lambda v: v)
        elif all(_list_of_flat_tuples(v) or not _has_tuple(v) for v in vals):
            codec, conv = "json-lt", (lambda v: v)
        else:
            codec, conv = "json-t", _jsonable
        # None stays null; NaN and everything else becomes JSON text
        out[c] = [None if v is None else json.dumps(conv(v), allow_nan=True, default=_np)
                  for v in df[c]]
        codecs[str(c)] = codec
    return out, codecs


def _alias_of(df: pd.DataFrame, c: str) -> str | None:
    """``data:<null>`` if every value of column ``c`` is ``data[c]`` (qlog events' ``frames``).

    Rows where ``data`` has no list under ``c`` must all hold the same null (``none`` or
    ``nan``), which is what decoding puts back.
    """
    if "data" not in df.columns or c == "data":
        return None
    nulls: set[str] = set()
    for v, d in zip(df[c], df["data"], strict=False):
        if not isinstance(d, dict):
            return None
        if isinstance(d.get(c), list):
            if d[c] is not v:
                return None
        elif v is None:
            nulls.add("none")
        elif isinstance(v, float) and math.isnan(v):
            nulls.add("nan")
        else:
            return None
    if len(nulls) > 1:
        return None
    return f"data:{nulls.pop() if nulls else 'none'}"


def _np(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def _loads(v: str) -> Any:
    try:
        return _fast_loads(v)
    except ValueError:  # NaN/Infinity, huge ints: only the standard module reads them
        return json.loads(v)


def _decode(df: pd.DataFrame, codecs: Mapping[str, str]) -> pd.DataFrame:
    loads = _loads
    aliases = {c: codec[len("alias:"):] for c, codec in codecs.items()
               if codec.startswith("alias:")}
    for c, codec in codecs.items():
        if c not in df.columns or c in aliases:
            continue
        col = [v if isinstance(v, str) else None for v in df[c].tolist()]  # null → NaN/None
        if codec == "json":
            vals = [None if v is None else loads(v) for v in col]
        elif codec == "json-lt":
            vals = []
            for v in col:
                x = None if v is None else loads(v)
                vals.append([tuple(y) if isinstance(y, list) else y for y in x]
                            if isinstance(x, list) else x)
        else:
            vals = [None if v is None else _unjson(loads(v)) for v in col]
        df[c] = pd.Series(vals, index=df.index, dtype=object)
    for c, alias in aliases.items():
        src, _, null_kind = alias.partition(":")
        null = math.nan if null_kind == "nan" else None
        if c in df.columns and src in df.columns:
            df[c] = pd.Series([d[c] if isinstance(d, dict) and isinstance(d.get(c), list)
                               else null for d in df[src]], index=df.index, dtype=object)
    return df


# -- one rep's cache ----------------------------------------------------------------------------

class RepCache:
    """The ``derived/`` folder of one rep.

    Args:
        rep_dir: The ``rep-<n>`` folder.
    """

    def __init__(self, rep_dir: str | Path) -> None:
        self.rep_dir = Path(rep_dir)
        self.dir = self.rep_dir / DERIVED_DIR

    def path(self, name: str) -> Path:
        """The Parquet file of table ``name``."""
        return self.dir / f"{name}.parquet"

    def names(self) -> list[str]:
        """Tables present (valid or not)."""
        if not self.dir.is_dir():
            return []
        return sorted(p.name[:-len(".parquet")] for p in self.dir.glob("*.parquet"))

    def read_meta(self, name: str) -> dict[str, Any] | None:
        """The stored metadata of ``name`` (None if absent or unreadable)."""
        p = self.path(name)
        if not p.exists():
            return None
        try:
            md = pq.read_schema(p).metadata or {}
            return dict(json.loads(md[_META_KEY]))
        except (OSError, KeyError, ValueError, pa.ArrowException):
            return None

    @staticmethod
    def sources_valid(recorded: Sequence[Mapping[str, Any]],
                      current: Sequence[Mapping[str, Any]]) -> bool:
        """Every recorded source still present is unchanged, and nothing new appeared.

        ``current`` is the fingerprint of the sources the table would be computed from now;
        a recorded source missing from disk (size -1 now) was pruned and does not invalidate.
        """
        rec = {s["rel"]: s for s in recorded}
        for s in current:
            r = rec.get(s["rel"])
            if s["size"] < 0:
                continue  # gone: pruned (if recorded) or never there
            if r is None or r["size"] != s["size"] or r["mtime_ns"] != s["mtime_ns"]:
                return False
        return True

    def lookup(self, name: str, sources: Sequence[str | Path],
               params: Mapping[str, Any] | None = None) -> Cached | None:
        """The table if it is valid for ``sources``/``params``; None if absent or stale.

        A table that exists but cannot be read is deleted with a :class:`CacheWarning`.
        """
        if not enabled():
            return None
        p = self.path(name)
        if not p.exists():
            return None
        info = self.read_meta(name)
        if info is None:
            self._corrupt(p, "unreadable metadata")
            return None
        if info.get("version") != VERSION or info.get("params", {}) != _norm(params or {}):
            return None
        if not self.sources_valid(info.get("sources", []), fingerprint(self.rep_dir, sources)):
            return None
        try:
            df = _decode(pq.read_table(p).to_pandas(), info.get("codecs", {}))
        except (OSError, ValueError, TypeError, pa.ArrowException) as exc:
            self._corrupt(p, str(exc))
            return None
        return Cached(frame=df, meta=info.get("meta", {}), sources=info.get("sources", []))

    def _corrupt(self, p: Path, why: str) -> None:
        warnings.warn(f"derived table {p} is corrupt ({why}); rebuilding it", CacheWarning,
                      stacklevel=4)
        with contextlib.suppress(OSError):
            p.unlink()

    def store(self, name: str, df: pd.DataFrame, sources: Sequence[str | Path],
              params: Mapping[str, Any] | None = None,
              meta: Mapping[str, Any] | None = None,
              fingerprints: Sequence[Mapping[str, Any]] | None = None) -> bool:
        """Write ``df`` as table ``name`` atomically; False (and a warning) if it cannot.

        ``fingerprints`` (taken *before* reading the sources) may be given so that a source
        rewritten while it was being read is recorded with its old fingerprint and re-derived
        next time.
        """
        if not enabled():
            return False
        fp = list(fingerprints) if fingerprints is not None else fingerprint(self.rep_dir,
                                                                             sources)
        enc, codecs = _encode(df)
        info = {"version": VERSION, "name": name, "params": _norm(params or {}),
                "sources": fp, "meta": _norm(meta or {}), "codecs": codecs}
        tmp = None
        try:
            self.dir.mkdir(exist_ok=True)
            table = pa.Table.from_pandas(enc, preserve_index=None)
            md = dict(table.schema.metadata or {})
            md[_META_KEY] = json.dumps(info).encode()
            table = table.replace_schema_metadata(md)
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.dir)
            os.close(fd)
            pq.write_table(table, tmp, compression="zstd")
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, self.path(name))
            tmp = None
            return True
        except (OSError, ValueError, pa.ArrowException) as exc:
            warnings.warn(f"cannot write derived table {self.path(name)}: {exc}", CacheWarning,
                          stacklevel=3)
            return False
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def get(self, name: str, sources: Sequence[str | Path],
            build: Callable[[], tuple[pd.DataFrame, Mapping[str, Any]]],
            params: Mapping[str, Any] | None = None) -> Cached:
        """The valid cached table, else ``build()`` (a frame and its meta), stored."""
        hit = self.lookup(name, sources, params)
        if hit is not None:
            return hit
        fp = fingerprint(self.rep_dir, sources)
        df, meta = build()
        self.store(name, df, sources, params, meta, fingerprints=fp)
        return Cached(frame=df, meta=dict(meta), sources=fp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _norm(d: Mapping[str, Any]) -> dict[str, Any]:
    """JSON round trip (so that stored and requested params compare equal)."""
    return dict(json.loads(json.dumps(_jsonable(dict(d)), default=str)))


def for_file(path: str | Path) -> RepCache | None:
    """The cache of the rep that holds ``path`` (None outside a rep folder or when disabled)."""
    if not enabled():
        return None
    rep = rep_dir_of(path)
    return RepCache(rep) if rep is not None else None


def rel_name(rep: RepCache, path: str | Path) -> str:
    """``path`` relative to the rep folder, made safe for a table name."""
    p = Path(path).absolute()
    try:
        rel = str(p.relative_to(rep.rep_dir.absolute()))
    except ValueError:
        rel = p.name
    return rel.replace(os.sep, "~")
