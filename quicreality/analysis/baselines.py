"""Baseline files keyed by the full measurement definition (schema 2).

A measurement is only comparable with a baseline measured the same way. The **definition** of a
workload's measurement (:func:`definition`) is a flat ``{field: value}`` dict built from the rep's
``manifest.json``:

* ``scenario``, ``quick`` (``--quick`` shrinks transfers to 2 MB / 3 s: mostly slow start);
* ``workload.*``: kind, client, server, size_bytes, seconds, reverse, congestion, reality,
  target (REALITY/fallback only), and any other measurement key the catalog adds (carrier,
  fingerprint, ...) — not name, description, reps or timeouts;
* ``link.*``: the configured link of both directions and the emulator backend;
* ``peer.<tool>``: the versions of the reference peers involved (never our own stack: that is
  what is being measured);
* ``sampling.intervals_per_rep`` and ``metric``.

The **host class** (machine, CPU model, CPU count) is recorded next to each entry; a different
host class is not comparable either (our Python stack and the Go/C peers do not scale alike with
the CPU), unless the caller allows it.

File layout (``results/baselines/<scenario>.json``)::

    {"schema": 2, "scenario": "lossy-wan", "source_runs": [...], "entries": [
      {"key": "ours-ours/ours__ours", "id": "<12 hex of the definition>", "definition": {...},
       "host_class": {...}, "host": {...}, "recorded": ..., "source_runs": [...], "note": ...,
       "metric": ..., "unit": ..., "control": false, "reps": [{"run", "rep", "value", "ok",
       "intervals", "source"}, ...]}, ...]}

:func:`load_baseline` reads schema 2 and converts schema 1 (no definitions: every entry is
then ``not comparable``, reason "schema 1 baseline"; :func:`rekey_v1` re-keys one from a run
measured the same way); any other schema is a ``ValueError`` that names it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "BASELINE_SCHEMA",
    "CHAIN_ONLY",
    "DEFINITION_EXCLUDED",
    "UNKNOWN",
    "definition",
    "definition_diff",
    "definition_id",
    "host_class",
    "load_baseline",
    "match_entry",
    "merge_entries",
    "rekey_v1",
    "run_definitions",
]

BASELINE_SCHEMA = 2
#: Workload keys that do not change what is measured.
DEFINITION_EXCLUDED = frozenset({"name", "description", "reps", "timeout_s", "baseline",
                                 "min_goodput_mbit", "pair", "quick"})
#: Workload fields that only a ``kind = "chain"`` workload uses (catalog ``Workload``); every
#: other workload carries their defaults, which must not make older baselines not comparable.
CHAIN_ONLY = frozenset({"hops", "parallel"})
#: Value of a definition field a schema-1 baseline did not record.
UNKNOWN = "<not recorded>"
_PEER_TOOLS = {"quicgo": "quic-go", "ngtcp2": "ngtcp2", "curl": "curl", "iperf3": "iperf3",
               "aioquic": "aioquic"}


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for k in sorted(value):
            _flat(f"{prefix}.{k}", value[k], out)
    else:
        out[prefix] = value


def definition(manifest: Mapping[str, Any], *, metric: str | None,
               intervals_per_rep: int) -> dict[str, Any]:
    """The measurement definition of one rep (see the module docstring), from its manifest."""
    sc = manifest.get("scenario") or {}
    name = manifest.get("workload")
    wl: Mapping[str, Any] = next((w for w in sc.get("workloads", []) if w.get("name") == name),
                                 {})
    out: dict[str, Any] = {"scenario": sc.get("name"), "quick": bool(sc.get("quick", False))}
    kind = wl.get("kind")
    for k in sorted(wl):
        if k in DEFINITION_EXCLUDED:
            continue
        if k == "target" and not (wl.get("reality") or kind == "fallback"):
            continue  # the target only serves REALITY / fallback workloads
        if k in CHAIN_ONLY and kind != "chain":
            continue  # hops / parallel have defaults everywhere but only shape a chain
        _flat(f"workload.{k}", wl[k], out)
    link = sc.get("link") or (manifest.get("link") or {}).get("configured") or {}
    _flat("link", link, out)
    out["link.backend"] = manifest.get("backend")
    tools = manifest.get("tools") or {}
    peers = {wl.get("client", manifest.get("client")), wl.get("server", manifest.get("server"))}
    if wl.get("reality") or kind == "fallback":
        peers.add(wl.get("target"))
    if kind in ("iperf3", "relay-iperf3"):
        peers.add("iperf3")
    for p in sorted(x for x in peers if x):
        tool = _PEER_TOOLS.get(str(p))
        if tool:
            out[f"peer.{tool}"] = tools.get(tool)
    out["sampling.intervals_per_rep"] = intervals_per_rep
    out["metric"] = metric
    return out


def definition_id(defn: Mapping[str, Any]) -> str:
    """12 hex digits of the SHA-256 of the canonical JSON of a definition."""
    raw = json.dumps(dict(defn), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def _relevant(defn: Mapping[str, Any]) -> Mapping[str, Any]:
    """``defn`` without the :data:`CHAIN_ONLY` fields of a workload that is not a chain (entries
    recorded between the chain workload's arrival and :func:`definition` learning to leave them
    out carry them)."""
    if defn.get("workload.kind") == "chain":
        return defn
    drop = {f"workload.{k}" for k in CHAIN_ONLY}
    return {k: v for k, v in defn.items() if k not in drop}


def definition_diff(current: Mapping[str, Any], baseline: Mapping[str, Any]
                    ) -> list[tuple[str, Any, Any]]:
    """``(field, now, baseline)`` for every field that differs.

    A field present on one side only counts as equal when its value there is None or False: a
    key the catalog adds later with its default (e.g. ``carrier = None``) does not make every
    older baseline not comparable; with any other value it does.
    """
    current, baseline = _relevant(current), _relevant(baseline)
    out = []
    for k in sorted(set(current) | set(baseline)):
        a, b = current.get(k), baseline.get(k)
        one_sided = (k in current) != (k in baseline)
        if a != b and not (one_sided and (a if k in current else b) in (None, False)):
            out.append((k, a, b))
    return out


def host_class(host: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a host description that must match: machine, CPU model, CPU count."""
    return {"machine": host.get("machine"), "cpu_model": host.get("cpu_model"),
            "cpus": host.get("cpus")}


def run_definitions(run_dir: str | Path, *, metric: str | None, intervals_per_rep: int
                    ) -> dict[str, dict[str, Any]]:
    """``workload/pair`` → ``{"definition", "control", "host"}`` from the first rep's manifest.

    ``control``: the catalog's ``baseline = true`` (a reference peer, not our stack);
    ``host``: the manifest's host description if the runner recorded one, else None.
    """
    run = Path(run_dir)
    out: dict[str, dict[str, Any]] = {}
    for m in sorted(run.rglob("rep-*/manifest.json")):
        parts = m.relative_to(run).parts
        if len(parts) < 5:
            continue
        key = f"{parts[-4]}/{parts[-3]}"
        if key in out:
            continue
        try:
            man = json.loads(m.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        wl: dict[str, Any] = next((w for w in (man.get("scenario") or {}).get("workloads", [])
                                   if w.get("name") == man.get("workload")), {})
        out[key] = {"definition": definition(man, metric=metric,
                                             intervals_per_rep=intervals_per_rep),
                    "control": bool(wl.get("baseline")), "host": man.get("host")}
    return out


def _v1_entries(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, w in doc.get("workloads", {}).items():
        defn = {"scenario": doc.get("scenario"), "quick": UNKNOWN, "link": UNKNOWN}
        out.append({"key": key, "id": "schema-1", "definition": defn,
                    "host_class": host_class(doc.get("host", {})), "host": doc.get("host", {}),
                    "recorded": doc.get("created"), "source_runs": doc.get("source_runs", []),
                    "note": doc.get("note", ""), "metric": w.get("metric"),
                    "unit": w.get("unit"), "control": None, "schema1": True,
                    "reps": w.get("reps", [])})
    return out


def load_baseline(path: str | Path) -> dict[str, Any]:
    """Read a baseline file as schema 2 (schema 1 is converted; unknown schema: ValueError)."""
    try:
        doc = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a baseline (invalid JSON: {exc})") from exc
    return normalise(doc, str(path))


def normalise(doc: Mapping[str, Any], where: str = "baseline") -> dict[str, Any]:
    """A loaded document as schema 2 (see :func:`load_baseline`)."""
    schema = doc.get("schema") if isinstance(doc, Mapping) else None
    if schema == BASELINE_SCHEMA:
        return dict(doc)
    if schema == 1:
        return {"schema": BASELINE_SCHEMA, "scenario": doc.get("scenario"),
                "source_runs": list(doc.get("source_runs", [])), "converted_from": 1,
                "entries": _v1_entries(doc)}
    raise ValueError(f"{where}: unknown baseline format (schema {schema!r}); this version "
                     f"reads schema 1 and {BASELINE_SCHEMA}: re-record it with "
                     "`python -m quicreality.scenarios baseline update RUN_DIR...`")


def match_entry(entries: Sequence[Mapping[str, Any]], key: str, defn: Mapping[str, Any],
                host: Mapping[str, Any] | None, *, any_host: bool = False
                ) -> tuple[Mapping[str, Any] | None, list[str]]:
    """The baseline entry measured like ``defn`` (and on ``host``'s class).

    Returns ``(entry, [])`` on a match, else ``(closest entry or None, reasons)`` where the
    reasons name the differing fields (``field: now X, baseline Y``).
    """
    same_key = [e for e in entries if e.get("key") == key]
    if not same_key:
        return None, ["no baseline for this workload"]
    hc = host_class(host or {})
    scored = []
    for e in same_key:
        diff = definition_diff(defn, e.get("definition", {}))
        hdiff = [] if any_host or host is None else [
            (f"host.{k}", hc[k], e.get("host_class", {}).get(k))
            for k in hc if hc[k] != e.get("host_class", {}).get(k)]
        scored.append((len(diff) + len(hdiff), diff + hdiff, e))
    scored.sort(key=lambda t: str(t[2].get("recorded", "")), reverse=True)
    scored.sort(key=lambda t: t[0])  # stable: of equally close entries, the latest recorded
    n, diffs, best = scored[0]
    if n == 0:
        return best, []
    if best.get("schema1"):
        return best, [("schema 1 baseline: no measurement definition recorded (re-key it with "
                      "`baseline rekey FILE RUN_DIR` or re-record it)")]
    return best, [f"{f}: now {_show(a)}, baseline {_show(b)}" for f, a, b in diffs]


def _show(v: Any) -> str:
    if isinstance(v, float) and math.isfinite(v) and v == int(v):
        v = int(v)
    return json.dumps(v, default=str) if not isinstance(v, str) else v


def merge_entries(old: Iterable[Mapping[str, Any]], new: Iterable[Mapping[str, Any]]
                  ) -> list[dict[str, Any]]:
    """``old`` with every entry of the same key, definition and host class replaced by ``new``."""
    new_l = [dict(e) for e in new]

    def replaced(e: Mapping[str, Any]) -> bool:
        return any(e.get("key") == n["key"] and e.get("host_class") == n.get("host_class")
                   and (e.get("id") == n["id"]
                        or not definition_diff(n["definition"], e.get("definition", {})))
                   for n in new_l)

    kept = [dict(e) for e in old if not replaced(e) and not e.get("schema1")]
    return sorted(kept + new_l, key=lambda e: (e["key"], str(e["definition"].get("quick")),
                                               e["id"]))


def rekey_v1(doc: Mapping[str, Any], like: Mapping[str, Mapping[str, Any]],
             controls: Mapping[str, bool], note: str) -> dict[str, Any]:
    """A schema-1 document as schema 2, taking each workload's definition from ``like``.

    ``like`` (key → definition) must come from a run measured the same way as the baseline's
    runs (same scenario, quick/full, link and peers); ``note`` says which, for provenance.
    Workloads missing from ``like`` are dropped (returned under ``dropped``).
    """
    if doc.get("schema") != 1:
        raise ValueError(f"rekey: expected a schema 1 document, got {doc.get('schema')!r}")
    entries, dropped = [], []
    for e in _v1_entries(doc):
        defn = like.get(e["key"])
        if defn is None:
            dropped.append(e["key"])
            continue
        e.pop("schema1")
        e.update(definition=dict(defn), id=definition_id(defn),
                 control=bool(controls.get(e["key"])),
                 note=(e["note"] + "; " if e["note"] else "") + note)
        entries.append(e)
    return {"schema": BASELINE_SCHEMA, "scenario": doc.get("scenario"),
            "source_runs": list(doc.get("source_runs", [])), "entries": entries,
            "dropped": dropped}
