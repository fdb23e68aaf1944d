"""Tables of a censor run (``censored`` workloads, e.g. ``censor-gfw``), for notebooks/censorship.py.

Every table is read from the run's files: ``check.json`` (the client configuration and the
outcome), ``censor.jsonl`` (the censor's decisions about this repetition's client, with the
prober's answer shapes) and ``client.pcap`` (the client's first flight, for the fingerprint
tool). Nothing is recomputed from what a peer printed.

>>> run = RunView.open("results/runs/<censor-gfw run>")
>>> outcomes(run)            # per rep: client config, blocked, by whom, why, how fast, verdict
>>> summary(run)             # per workload: reps, blocked, median time to block, verdicts
>>> probes(run)              # per probed rep and probe class: the server's and target's answers
>>> first_flights(run)       # per workload: the client's Initial vs Chromium's profile
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from .fingerprint import fingerprint_pcap
from .fingerprint_views import chromium_reference, diff_table, profile_of
from .views import RepView, RunView

__all__ = ["decisions", "first_flights", "outcomes", "probes", "summary"]


def decisions(rep: RepView) -> list[dict[str, Any]]:
    """The censor's records about this repetition's client (``censor.jsonl``)."""
    path = rep.path / "censor.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _check(rep: RepView) -> dict[str, Any]:
    path = rep.path / "check.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _client_label(d: dict[str, Any]) -> str:
    if d.get("reality"):
        return f"{d.get('client')} REALITY {d.get('fingerprint') or 'default'}/" \
               f"{d.get('carrier') or 'ech'}"
    return str(d.get("client"))


def outcomes(run: RunView) -> pd.DataFrame:
    """One row per censored repetition: who connected how, and what the censor did."""
    rows = []
    for rep in run.all_reps():
        check = _check(rep)
        d = check.get("details", {})
        c = d.get("censor")
        if c is None:
            continue  # not a censored workload
        recs = decisions(rep)
        probe = next((r for r in recs if r.get("action") == "probe"), None)
        rows.append({
            "workload": rep.workload, "rep": rep.rep, "client": _client_label(d),
            "sni": d.get("sni"), "expect": d.get("expect"), "ok": check.get("ok"),
            "blocked": c["blocked"], "blocked_by": c["blocked_by"],
            "time_to_block_ms": c["time_to_block_ms"], "blocked_on_packet": c["blocked_on_packet"],
            "reason": c["reason"], "probed": probe is not None,
            "probe_after_ms": probe["flow_age_ms"] if probe else None,
            "probe_verdict": c["probe_verdict"], "transfer_ok": d.get("sha256") is not None and (
                d.get("sha256") == d.get("expected_sha256") or d.get("marker_in_dom") is True),
            "client_secs": d.get("client_secs"),
            "goodput_mbit": (d.get("wire") or {}).get("goodput_mbit"),
        })
    return pd.DataFrame(rows, columns=list(rows[0]) if rows else ["workload", "rep", "client"])


def summary(run: RunView) -> pd.DataFrame:
    """Per workload: repetitions, how many blocked and by which policy, time to block
    (median, ms), the prober's verdicts, transfers that arrived."""
    o = outcomes(run)
    if o.empty:
        return pd.DataFrame(columns=["client", "sni", "reps", "blocked", "by"])
    rows = []
    for (w, client), g in o.groupby(["workload", "client"], sort=False):
        blocked = g[g["blocked"]]
        rows.append({
            "workload": w, "client": client, "sni": g["sni"].iloc[0], "reps": len(g),
            "blocked": f"{len(blocked)}/{len(g)}",
            "by": ", ".join(sorted(set(blocked["blocked_by"].dropna()))) or "-",
            "time_to_block_ms": blocked["time_to_block_ms"].median() if len(blocked) else None,
            "on_packet": ", ".join(str(int(x)) for x in sorted(set(
                blocked["blocked_on_packet"].dropna()))) or "-",
            "probe_verdicts": ", ".join(f"{v} {n}" for v, n in g["probe_verdict"].dropna()
                                        .value_counts().items()) or "not probed",
            "transfer_ok": f"{int(g['transfer_ok'].sum())}/{len(g)}",
            "checks_ok": f"{int(g['ok'].sum())}/{len(g)}",
        })
    return pd.DataFrame(rows).set_index("workload")


def probes(run: RunView) -> pd.DataFrame:
    """Per probed repetition and probe class: the server's and the target's answer shapes."""
    rows = []
    for rep in run.all_reps():
        for r in decisions(rep):
            for p in r.get("probe_shapes", []):
                rows.append({"workload": rep.workload, "rep": rep.rep,
                             "verdict": r["probe_verdict"], "probe": p["probe"],
                             "server": ", ".join(p["server"]) or "silence",
                             "target": ", ".join(p["target"]) or "silence",
                             "same": p["server"] == p["target"]})
    return pd.DataFrame(rows, columns=["workload", "rep", "verdict", "probe", "server", "target",
                                       "same"])


def first_flights(run: RunView, *, rep: int = 1) -> pd.DataFrame:
    """Per workload: how many client features of its first flight differ from Chromium 156's
    profile (``docs/data/chrome156-hello.json``; random fields ignored), and which."""
    profiles = {}
    for r in run.all_reps():
        pcap = Path(r.path) / "client.pcap"
        if r.rep != rep or not pcap.exists() or not _check(r).get("details", {}).get("censor"):
            continue
        flows = fingerprint_pcap(pcap)
        if flows:
            profiles[r.workload] = profile_of(flows[:1], label=r.workload)
    if not profiles:
        return pd.DataFrame(columns=["flows", "differing", "features"])
    return diff_table(chromium_reference(), profiles)
