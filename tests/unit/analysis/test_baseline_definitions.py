"""Baseline definitions: chain-only fields, the latest of equal matches, and the committed
lossy-wan baseline covering the CI gate's ``--quick`` run of today's catalog.

The last test exists because the gate silently turned into a no-op once: the chain workload
added ``hops``/``parallel`` with non-null defaults to every workload, every committed ``--quick``
entry became "not comparable", and ``.ci/run`` passed without judging anything.
"""

from __future__ import annotations

from typing import Any

from quicreality.analysis.baselines import (
    definition,
    definition_diff,
    load_baseline,
    match_entry,
    merge_entries,
)
from quicreality.analysis.regression import baseline_path
from quicreality.scenarios.catalog import find_scenario

_MACHINE_FIELDS = ("peer.", "link.backend")


def _manifest(workload: dict[str, Any]) -> dict[str, Any]:
    return {"scenario": {"name": "s", "quick": True, "workloads": [workload], "link": {}},
            "workload": workload["name"], "backend": "userspace", "tools": {}}


def test_chain_only_fields_count_only_for_chains() -> None:
    download = {"name": "d", "kind": "download", "client": "ours", "server": "ours",
                "hops": 2, "parallel": 1}
    chain = {**download, "name": "c", "kind": "chain"}
    d = definition(_manifest(download), metric="goodput", intervals_per_rep=20)
    c = definition(_manifest(chain), metric="goodput", intervals_per_rep=20)
    assert "workload.hops" not in d and "workload.parallel" not in d
    assert c["workload.hops"] == 2 and c["workload.parallel"] == 1
    # an entry recorded while they were still stored for a download matches; a chain does not
    # match a chain with other hops
    assert definition_diff(d, {**d, "workload.hops": 2, "workload.parallel": 1}) == []
    assert [f for f, _, _ in definition_diff(c, {**c, "workload.hops": 1})] == ["workload.hops"]


def test_match_prefers_the_latest_of_equal_entries_and_update_replaces_equivalents() -> None:
    defn = {"scenario": "s", "quick": True, "workload.kind": "download", "metric": "goodput"}
    old_style = {**defn, "workload.hops": 2, "workload.parallel": 1}
    hc = {"machine": "x86_64", "cpu_model": "cpu", "cpus": 2}
    a = {"key": "w/p", "id": "a", "definition": old_style, "host_class": hc,
         "recorded": "2026-12-04T00:00:00+00:00"}
    b = {"key": "w/p", "id": "b", "definition": defn, "host_class": hc,
         "recorded": "2026-12-07T00:00:00+00:00"}
    host = {"machine": "x86_64", "cpu_model": "cpu", "cpus": 2}
    for entries in ([a, b], [b, a]):
        best, why = match_entry(entries, "w/p", defn, host)
        assert why == [] and best is not None and best["id"] == "b"
    merged = merge_entries([a], [b])
    assert [e["id"] for e in merged] == ["b"]
    other = {**a, "id": "c", "host_class": {**hc, "cpus": 4}}
    assert sorted(e["id"] for e in merge_entries([a, other], [b])) == ["b", "c"]


def test_committed_lossy_wan_baseline_covers_the_quick_run_of_the_catalog() -> None:
    sc = find_scenario("lossy-wan").quickened()
    doc = load_baseline(baseline_path("lossy-wan"))
    entries = doc["entries"]
    scenario = sc.to_dict()
    missing = []
    for w in sc.workloads:
        if w.kind == "fallback":
            continue  # no goodput: the page coming back byte-identical is its check
        manifest = {"scenario": scenario, "workload": w.name, "client": w.client,
                    "server": w.server, "backend": "userspace", "tools": {}}
        defn = definition(manifest, metric="goodput", intervals_per_rep=20)
        key = f"{w.name}/{w.client}__{w.server}"
        ok = False
        reasons: list[str] = []
        for e in (e for e in entries if e.get("key") == key):
            diff = [f for f, _, _ in definition_diff(defn, e.get("definition", {}))
                    if not f.startswith(_MACHINE_FIELDS)]
            ok = ok or not diff
            reasons.append(", ".join(diff))
        if not ok:
            missing.append(f"{key}: {'; '.join(reasons) or 'no entry'}")
    assert not missing, ("record the --quick baseline again (python -m quicreality.scenarios "
                         "baseline update RUN_DIR...): " + " | ".join(missing))
