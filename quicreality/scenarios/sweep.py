"""Parameter sweeps: a scenario file's ``[sweep]`` table, expanded into one scenario per point.

Theory of operation
-------------------
A ``[sweep]`` table lists values for link parameters and workload options; the sweep is their
cartesian product, in file order (the first key varies slowest)::

    [sweep]
    loss = ["0%", "0.5%", "1%", "2%", "5%"]   # a [link] key: both directions
    delay_ms = [5, 20, 50]                    # one-way, so RTT 10 / 40 / 100 ms
    workload.size = ["1MB", "5MB"]            # a workload option: every workload that sets it

    [quick.sweep]                             # what --quick keeps (values of the sweep above)
    loss = ["0%", "2%"]
    delay_ms = [20]

* **Link keys** are the scalar keys of ``[link]`` (``loss``, ``delay_ms``, ``rate_mbit``,
  ``jitter_ms``, ``queue_bytes``, ...). A point sets the key at the top of its ``[link]``
  (both directions); a ``[link.to_server]``/``[link.to_client]`` table that sets the same key
  is an error (the sweep would not change that direction).
* **Workload keys** are ``workload.<key>`` with any ``[[workload]]`` key except ``name``,
  ``kind``, ``client``, ``server`` and ``quick``. A point sets it in every ``[[workload]]``
  table that sets that key itself (so the file says which workloads vary); none setting it is
  an error.
* Each point is a full, validated scenario (:func:`expand`): named
  ``<scenario>.<key>-<value>...`` (a directory name, e.g. ``loss-sweep.loss-0.5pct.delay_ms-20``),
  with the point's parameters in :attr:`~.catalog.Scenario.point` (``sweep``, ``index``,
  ``params``, ``seed``) and in every manifest.
* **Seeds.** A point's base seed is :func:`point_seed`: the first 8 hex digits of
  ``sha256(json({"params": params, "seed": seed}, sort_keys))`` modulo 10**6, where ``seed`` is
  the scenario's base seed. Repetition *k* of the point then uses ``point_seed * 1000 + k`` as
  in any scenario. The seed depends only on the base seed and the point's own parameters: it
  does not change when values are added to the sweep or the keys are reordered, and it is the
  same under every executor.

Errors name the file and the field, as everywhere in the schema: ``sweep.loss[2]: ...`` for a
bad value, ``quick.sweep.loss: ...`` for a quick value not in the sweep.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["LINK_SWEEP_KEYS", "WORKLOAD_SWEEP_KEYS", "Sweep", "SweepError", "apply_point",
           "parse_sweep", "point_label", "point_seed"]

#: ``[link]`` keys a sweep may vary (scalar keys of :class:`~.model.Impairment`).
LINK_SWEEP_KEYS = frozenset({"delay_ms", "jitter_ms", "reorder", "rate_mbit", "queue_packets",
                             "queue_bytes", "loss", "duplicate", "corrupt",
                             "corrupt_fix_checksum", "ecn_mark_threshold_ms"})
#: ``[[workload]]`` keys a sweep may vary (as ``workload.<key>``).
WORKLOAD_SWEEP_KEYS = frozenset({"size", "seconds", "reverse", "congestion", "reality", "target",
                                 "reps", "timeout_s", "min_goodput_mbit"})
_LABEL_BAD = re.compile(r"[^a-z0-9_.-]+")


class SweepError(ValueError):
    """A bad ``[sweep]`` table: ``field_path`` names the field (``sweep.loss[2]``)."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"{field_path}: {message}")
        self.field_path = field_path
        self.message = message


@dataclass(frozen=True, slots=True)
class Sweep:
    """A validated ``[sweep]`` table.

    Attributes:
        keys: Swept keys in file order (``loss``, ``workload.size``, ...).
        values: One tuple of values per key.
        quick: ``--quick`` subset: per key, the values kept (None: all of them).
    """

    keys: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]
    quick: tuple[tuple[Any, ...] | None, ...] | None = None

    def combos(self, *, quick: bool = False) -> list[dict[str, Any]]:
        """The points' parameters (``{key: value}``), first key slowest."""
        vals = self.values
        if quick and self.quick is not None:
            vals = tuple(q if q is not None else v for q, v in zip(self.quick, vals, strict=True))
        return [dict(zip(self.keys, combo, strict=True)) for combo in itertools.product(*vals)]

    def size(self, *, quick: bool = False) -> int:
        """Number of points."""
        return len(self.combos(quick=quick))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (for run.json)."""
        return {"keys": list(self.keys), "values": [list(v) for v in self.values],
                "quick": None if self.quick is None else
                [None if q is None else list(q) for q in self.quick]}


def _check_key(key: str, doc: Mapping[str, Any]) -> None:
    path = f"sweep.{key}"
    if key.startswith("workload."):
        wkey = key.split(".", 1)[1]
        if wkey not in WORKLOAD_SWEEP_KEYS:
            raise SweepError(path, f"not a workload option a sweep can vary (allowed: "
                                   f"{', '.join(sorted(WORKLOAD_SWEEP_KEYS))})")
        workloads = doc.get("workload", [])
        if not any(isinstance(w, Mapping) and wkey in w for w in workloads):
            raise SweepError(path, f"no [[workload]] sets {wkey!r}; the sweep varies it in the "
                                   "workloads that set it")
        return
    if key not in LINK_SWEEP_KEYS:
        raise SweepError(path, f"unknown key (link keys: {', '.join(sorted(LINK_SWEEP_KEYS))}; "
                               "workload options as workload.<key>)")
    link = doc.get("link", {})
    if isinstance(link, Mapping):
        for direction in ("to_server", "to_client"):
            sub = link.get(direction)
            if isinstance(sub, Mapping) and key in sub:
                raise SweepError(path, f"link.{direction} sets {key} too; the sweep would not "
                                       "change that direction")


def _flatten(table: Mapping[str, Any], path: str) -> dict[str, Any]:
    """``{"loss": [...], "workload": {"size": [...]}}`` → ``{"loss": ..., "workload.size": ...}``."""
    out: dict[str, Any] = {}
    for k, v in table.items():
        if k == "workload" and isinstance(v, Mapping):
            for wk, wv in v.items():
                out[f"workload.{wk}"] = wv
        elif isinstance(v, Mapping):
            raise SweepError(f"{path}.{k}", "must be a list of values (only workload.<key> "
                                            "nests)")
        else:
            out[k] = v
    return out


def parse_sweep(doc: Mapping[str, Any]) -> Sweep:
    """Validate the ``[sweep]`` (and ``[quick.sweep]``) table of a parsed scenario document.

    Only the shape is checked here (keys, non-empty lists, quick values taken from the sweep);
    each value is validated by parsing the points (:func:`~.catalog.parse_scenario`).

    Raises:
        SweepError: Naming the field.
    """
    raw = doc.get("sweep")
    if not isinstance(raw, Mapping):
        raise SweepError("sweep", f"must be a table, got {type(raw).__name__}")
    flat = _flatten(raw, "sweep")
    if not flat:
        raise SweepError("sweep", "needs at least one key with a list of values")
    keys, values = [], []
    for key, vals in flat.items():
        _check_key(key, doc)
        if not isinstance(vals, list) or not vals:
            raise SweepError(f"sweep.{key}", f"must be a non-empty list of values, got {vals!r}")
        for i, v in enumerate(vals):
            if isinstance(v, (list, dict)):
                raise SweepError(f"sweep.{key}[{i}]", f"must be a single value, got {v!r}")
            if v in vals[:i]:
                raise SweepError(f"sweep.{key}[{i}]", f"duplicate value {v!r}")
        keys.append(key)
        values.append(tuple(vals))
    quick: list[tuple[Any, ...] | None] | None = None
    q = doc.get("quick", {})
    if isinstance(q, Mapping) and "sweep" in q:
        if not isinstance(q["sweep"], Mapping):
            raise SweepError("quick.sweep", "must be a table")
        qflat = _flatten(q["sweep"], "quick.sweep")
        quick = [None] * len(keys)
        for key, qvals in qflat.items():
            if key not in keys:
                raise SweepError(f"quick.sweep.{key}", f"not a key of [sweep] (have: "
                                                       f"{', '.join(keys)})")
            if not isinstance(qvals, list) or not qvals:
                raise SweepError(f"quick.sweep.{key}", "must be a non-empty list of values")
            full = values[keys.index(key)]
            for i, v in enumerate(qvals):
                if v not in full:
                    raise SweepError(f"quick.sweep.{key}[{i}]",
                                     f"{v!r} is not one of sweep.{key} {list(full)!r}")
            quick[keys.index(key)] = tuple(qvals)
    return Sweep(keys=tuple(keys), values=tuple(values),
                 quick=None if quick is None else tuple(quick))


def apply_point(doc: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The scenario document of one point: ``doc`` without ``[sweep]``, the values set."""
    out = copy.deepcopy(dict(doc))
    out.pop("sweep", None)
    q = out.get("quick")
    if isinstance(q, dict):
        q.pop("sweep", None)
    for key, v in params.items():
        if key.startswith("workload."):
            wkey = key.split(".", 1)[1]
            for w in out.get("workload", []):
                if isinstance(w, dict) and wkey in w:
                    w[wkey] = v
        else:
            out.setdefault("link", {})[key] = v
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float) and v == int(v):
        v = int(v)
    s = str(v).strip().lower().replace("%", "pct").replace(" ", "")
    return _LABEL_BAD.sub("_", s).strip("_") or "x"


def point_label(params: Mapping[str, Any]) -> str:
    """``loss-0.5pct.delay_ms-20``: the part of the point's name after the scenario's."""
    return ".".join(f"{k.rsplit('.', 1)[-1]}-{_fmt(v)}" for k, v in params.items())


def point_seed(seed: int, params: Mapping[str, Any]) -> int:
    """A point's base seed (module docstring): stable for the same base seed and parameters."""
    raw = json.dumps({"params": dict(params), "seed": seed}, sort_keys=True, default=str)
    return int(hashlib.sha256(raw.encode()).hexdigest()[:8], 16) % 1_000_000


def unique_labels(combos: Sequence[Mapping[str, Any]]) -> list[str]:
    """:func:`point_label` of every point, ``-<index>`` appended where two would collide."""
    labels = [point_label(c) for c in combos]
    seen: dict[str, int] = {}
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
    return [lab if seen[lab] == 1 else f"{lab}-{i}" for i, lab in enumerate(labels)]
