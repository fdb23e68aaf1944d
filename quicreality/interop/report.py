"""A run's outputs: ``result.json`` in QIR's schema, ``samples.jsonl`` and ``matrix.html``.

``result.json`` follows quic-interop-runner's ``interop.py`` export: ``results`` and
``measurements`` hold one list per (client, server) pair, clients outer and servers inner,
each entry ``{"abbr", "name", "result"}`` (measurements add ``"details"``, e.g.
``"9210 (± 35) kbps"``); ``result`` is ``succeeded``/``failed``/``unsupported`` or ``null``
for a case that was not run.  QIR's web page reads exactly these keys, and links each letter to
``<log_dir>/<server>_<client>/<test name>``; our run directory has that layout.

``matrix.html`` is our own page (no QIR code): one server x client grid per case, one letter
per repetition, coloured by verdict, linking to the pair's folder, with the reason as tooltip.
"""

from __future__ import annotations

import html
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from .cases import Case
from .runner import Outcome

__all__ = ["REQUIRED_KEYS", "SAMPLE_KEYS", "markdown_table", "matrix_html", "measurement_details",
           "result_json", "tidy_rows"]

#: Keys of every samples.jsonl row (one row per outcome and metric).
SAMPLE_KEYS = ("run", "case", "abbr", "server", "client", "rep", "result", "reason", "metric",
               "value", "unit", "source")
#: With ``--jobs``: which job ran the outcome, when, and next to which other runs.
_PROVENANCE = ("job", "jobs", "wall_start", "wall_end", "concurrent", "concurrent_with")
#: Verdict metrics -> (tidy name, unit, source).
_METRICS = {"goodput_kbps": ("goodput", "kbit/s", "wire"), "seconds": ("transfer_time", "s", "wire"),
            "zero_rtt_bytes": ("zero_rtt_bytes", "B", "wire"),
            "one_rtt_bytes": ("client_one_rtt_bytes", "B", "wire")}


def tidy_rows(o: Outcome, run: str) -> list[dict[str, Any]]:
    """The tidy samples of one outcome: the runner's elapsed time and each verdict metric."""
    base = {"run": run, "case": o.case.name, "abbr": o.case.abbr, "server": o.server,
            "client": o.client, "rep": o.rep,
            "result": o.verdict.result if o.verdict is not None else None,
            "reason": o.verdict.reason if o.verdict is not None else o.reason,
            **{k: o.sample[k] for k in _PROVENANCE if k in o.sample}}
    rows = [{**base, "metric": "elapsed", "value": round(o.secs, 3), "unit": "s",
             "source": "runner"}]
    for k, v in (o.verdict.metrics.items() if o.verdict is not None else ()):
        name, unit, src = _METRICS.get(k, (k, "", "wire"))
        rows.append({**base, "metric": name, "value": v, "unit": unit, "source": src})
    return rows

#: QIR's top-level keys (interop.py ``_export_results``).
REQUIRED_KEYS = ("start_time", "end_time", "log_dir", "servers", "clients", "urls", "tests",
                 "quic_version", "results", "measurements")

URLS: Mapping[str, str] = {
    "ours": "https://github.com/quicreality/quicreality",
    "aioquic": "https://github.com/aiortc/aioquic",
    "qh3": "https://github.com/jawah/qh3",
    "quicgo": "https://github.com/quic-go/quic-go",
    "ngtcp2": "https://github.com/ngtcp2/ngtcp2",
    "curl": "https://github.com/curl/curl",
}


def _pair_result(outs: Sequence[Outcome]) -> str | None:
    """One result for a test over its repetitions: failed beats unsupported beats succeeded."""
    vs = [o.verdict.result for o in outs if o.verdict is not None]
    if not vs:
        return None
    for r in ("failed", "unsupported", "succeeded"):
        if r in vs:
            return r
    return vs[0]


def measurement_details(outs: Sequence[Outcome]) -> tuple[str | None, str]:
    """(result, QIR's ``"mean (± sd) kbps"``) of a measurement's repetitions."""
    res = _pair_result(outs)
    vals = [float(o.verdict.metrics["goodput_kbps"]) for o in outs
            if o.verdict is not None and o.verdict.result == "succeeded"
            and "goodput_kbps" in o.verdict.metrics]
    if res != "succeeded" or not vals:
        return res, ""
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return res, f"{statistics.mean(vals):.0f} (± {sd:.0f}) kbps"


def result_json(outcomes: Sequence[Outcome], cases: Sequence[Case], servers: Sequence[str],
                clients: Sequence[str], start: float, end: float, log_dir: str) -> dict[str, Any]:
    """The QIR-schema document (see the module docstring)."""
    by: dict[tuple[str, str, str], list[Outcome]] = {}
    for o in outcomes:
        by.setdefault((o.case.name, o.server, o.client), []).append(o)
    out: dict[str, Any] = {
        "start_time": start, "end_time": end, "log_dir": log_dir,
        "servers": list(servers), "clients": list(clients),
        "urls": {p: URLS.get(p, "") for p in [*clients, *servers]},
        "tests": {c.abbr: {"name": c.name, "desc": c.desc} for c in cases},
        "quic_version": "0x1", "results": [], "measurements": [],
    }
    for client in clients:
        for server in servers:
            out["results"].append([
                {"abbr": c.abbr, "name": c.name,
                 "result": _pair_result(by.get((c.name, server, client), []))}
                for c in cases if not c.measurement])
            ms = []
            for c in cases:
                if not c.measurement:
                    continue
                res, details = measurement_details(by.get((c.name, server, client), []))
                if res is None:
                    continue  # QIR leaves out measurements without a result
                ms.append({"name": c.name, "abbr": c.abbr, "result": res, "details": details})
            out["measurements"].append(ms)
    return out


_CSS = """body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;margin:0 0 1.5em}
td,th{border:1px solid #bbb;padding:3px 8px;text-align:center}
a.v{display:inline-block;min-width:1.6em;padding:1px 3px;margin:1px;border-radius:3px;
color:#fff;text-decoration:none;font-weight:bold}
.succeeded{background:#198754}.failed{background:#dc3545}.unsupported{background:#6c757d}
.notrun{background:#fff;color:#999!important;border:1px dashed #999}"""


def matrix_html(outcomes: Sequence[Outcome], cases: Sequence[Case], servers: Sequence[str],
                clients: Sequence[str], title: str) -> str:
    """The page (see the module docstring)."""
    by: dict[tuple[str, str, str], list[Outcome]] = {}
    for o in outcomes:
        by.setdefault((o.case.name, o.server, o.client), []).append(o)
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1>",
             "<p>Rows: clients; columns: servers. ✓ succeeded, ✕ failed, ? unsupported "
             "(exit 127), – not run. Hover for the reason; click for the folder.</p>"]
    for c in cases:
        parts.append(f"<h2 id='{e(c.name)}'>{e(c.abbr)} {e(c.name)}</h2><p>{e(c.desc)} "
                     f"<i>Link: {e(c.link_text)}</i></p>")
        parts.append(f"<table class='case' data-case='{e(c.name)}'><tr><th>client \\ server</th>"
                     + "".join(f"<th>{e(s)}</th>" for s in servers) + "</tr>")
        for cl in clients:
            parts.append(f"<tr><th>{e(cl)}</th>")
            for s in servers:
                cells = []
                outs = by.get((c.name, s, cl), [])
                for o in outs:
                    res = o.verdict.result if o.verdict is not None else "notrun"
                    href = f"{s}_{cl}/{c.name}/" + (f"{o.rep}/" if len(outs) > 1 else "")
                    sym = {"succeeded": "✓", "failed": "✕", "unsupported": "?"}.get(res, "–")
                    tip = o.verdict.reason if o.verdict is not None else o.reason
                    if o.verdict is not None and "goodput_kbps" in o.verdict.metrics:
                        tip = f"{o.verdict.metrics['goodput_kbps']:.0f} kbps; {tip}"
                    link = f" href='{e(href)}'" if o.verdict is not None else ""
                    cells.append(f"<a class='v {res}' data-result='{res}'{link} "
                                 f"title='{e(tip)}'>{e(c.abbr)}{sym}</a>")
                parts.append(f"<td data-server='{e(s)}' data-client='{e(cl)}'>"
                             + "".join(cells) + "</td>")
            parts.append("</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


_MD = {"succeeded": "✓", "failed": "✕", "unsupported": "?", None: "–"}


def markdown_table(doc: Mapping[str, Any]) -> str:
    """A ``result.json`` as a markdown grid: one row per (server, client) pair, one column per
    test (✓ ✕ ? and – for not run), measurements as their ``details``."""
    servers, clients = doc["servers"], doc["clients"]
    tests = [x["abbr"] for x in (doc["results"][0] if doc["results"] else [])]
    meas = sorted({m["abbr"] for ms in doc["measurements"] for m in ms})
    head = ["server", "client", *tests, *meas]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, client in enumerate(clients):
        for j, server in enumerate(servers):
            k = i * len(servers) + j
            cells = [_MD.get(x["result"], "–") for x in doc["results"][k]]
            ms = {m["abbr"]: (m["details"] or _MD.get(m["result"], "–"))
                  for m in doc["measurements"][k]}
            lines.append("| " + " | ".join([server, client, *cells,
                                             *(ms.get(a, "–") for a in meas)]) + " |")
    return "\n".join(lines) + "\n"
