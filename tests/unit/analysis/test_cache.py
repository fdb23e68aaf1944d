"""The derived-data cache (rep-N/derived/*.parquet) gives exactly what the uncached path gives.

On a copy of the committed sample run, every table the notebooks and the report read is computed
three ways: with the cache off (``QR_ANALYSIS_CACHE=0``: straight from pcaps and qlogs), cold
(the first read writes the cache) and warm (read back from Parquet). All three must be equal.
Then the cache's contracts: a changed raw file is re-derived (never served stale), a corrupt
table is rebuilt with a warning, and a pruned rep (captures deleted) still reads the same.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from quicreality.analysis import cache
from quicreality.analysis.metrics import handshake_qlog, handshake_wire, loss_summary
from quicreality.analysis.report import build_report
from quicreality.analysis.views import RepView, RunView


@pytest.fixture()
def run(tmp_path: Path, sample: Path) -> Path:
    dst = tmp_path / sample.name
    shutil.copytree(sample, dst, ignore=shutil.ignore_patterns("derived"))
    return dst


def _tables(rep: RepView) -> dict[str, Any]:
    """Everything a notebook reads from one rep."""
    out: dict[str, Any] = {"goodput": rep.goodput(), "rtt": rep.rtt, "metrics": rep.metrics,
                           "qlog_packets": rep.qlog_packets, "loss_summary": rep.loss_summary,
                           "handshake_qlog": rep.handshake_qlog,
                           "reality_events": rep.reality_events,
                           "handshake_wire": rep.handshake_wire}
    if rep.client_pcap is not None:
        out["client_packets"] = rep.client_pcap.packets
        out["client_frames"] = rep.client_pcap.frames
    if rep.server_pcap is not None:
        out["server_packets"] = rep.server_pcap.packets
    return out


def _everything(run: Path) -> dict[str, Any]:
    view = RunView(run)
    out: dict[str, Any] = {}
    for rep in view.all_reps():
        for name, table in _tables(rep).items():
            out[f"{rep.path.relative_to(run)}:{name}"] = table
    report = build_report(run, baseline={}, unit="interval")
    out["report"] = sorted((c.key, c.current_reps, tuple(round(v, 9) for v in c.current))
                           for c in report.comparisons)
    return out


def _assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], pd.DataFrame):
            pd.testing.assert_frame_equal(a[k].reset_index(drop=True), b[k].reset_index(drop=True),
                                          check_dtype=False, obj=k)
        else:
            assert a[k] == b[k], k


def _derived(run: Path) -> list[Path]:
    return sorted(run.rglob("rep-*/derived/*.parquet"))


def test_cached_equals_uncached_cold_and_warm(run: Path) -> None:
    with cache.disabled():
        plain = _everything(run)
    assert not _derived(run), "the disabled cache wrote tables"
    cold = _everything(run)
    written = {p: p.stat().st_mtime_ns for p in _derived(run)}
    assert len(written) >= 20
    warm = _everything(run)
    assert {p: p.stat().st_mtime_ns for p in _derived(run)} == written, "warm reads rewrote"
    _assert_same(plain, cold)
    _assert_same(plain, warm)
    assert any(isinstance(v, pd.DataFrame) and len(v) > 100 for v in plain.values())


def test_the_small_tables_equal_the_functions_on_the_full_events(run: Path) -> None:
    """The notebooks' per-rep summaries (read from small tables, cold and warm) are exactly
    what the functions give on the full event table and capture, as the notebooks used to call
    them."""
    seen = {"loss": 0, "handshake": 0, "reality": 0, "wire": 0}
    for _ in ("cold", "warm"):
        for rep in RunView(run).all_reps():
            with cache.disabled():
                ev = RepView(rep.path, rep.workload, rep.pair, rep.rep).events
                pcap = RepView(rep.path, rep.workload, rep.pair, rep.rep).client_pcap
            if len(ev):
                pd.testing.assert_frame_equal(rep.loss_summary, loss_summary(ev),
                                              check_dtype=False)
                seen["loss"] += 1
                want = handshake_qlog(ev)
                pd.testing.assert_frame_equal(rep.handshake_qlog, want, check_dtype=False)
                seen["handshake"] += len(want)
                v = ev[ev["name"].str.startswith("reality:")]
                got = rep.reality_events
                assert list(got["name"]) == list(v["name"])
                assert list(got["data"]) == list(v["data"])
                assert list(got["time_s"]) == list(v["time_s"])
                seen["reality"] += len(v)
            else:
                assert rep.loss_summary.empty and rep.handshake_qlog.empty
            if pcap is not None:
                assert rep.handshake_wire == pytest.approx(handshake_wire(pcap), nan_ok=True)
                seen["wire"] += 1
            else:
                assert rep.handshake_wire is None
    # the committed sample has every kind: qlogs, client qlogs, gate verdicts, a capture
    assert all(n > 0 for n in seen.values()), seen


def _first_rep_with(run: Path, pred: Callable[[RepView], bool]) -> RepView:
    return next(r for r in RunView(run).all_reps() if pred(r))


def test_a_changed_raw_file_is_rederived_never_served_stale(run: Path) -> None:
    rep = _first_rep_with(run, lambda r: bool(r.files.qlogs))
    before = rep.rtt
    qlog = rep.files.qlogs[0]
    data = qlog.read_bytes()
    qlog.write_bytes(data)  # same bytes, new mtime: the cached table is stale by its key
    again = RepView(rep.path, rep.workload, rep.pair, rep.rep)
    with warnings.catch_warnings():
        warnings.simplefilter("error", cache.CacheWarning)  # stale is not corrupt: no warning
        pd.testing.assert_frame_equal(again.rtt.reset_index(drop=True),
                                      before.reset_index(drop=True), check_dtype=False)
    meta = cache.RepCache(rep.path).read_meta("rtt")
    assert meta is not None
    recorded = {s["rel"]: s["mtime_ns"] for s in meta["sources"]}
    assert recorded[str(qlog.relative_to(rep.path))] == qlog.stat().st_mtime_ns


def test_a_corrupt_table_is_rebuilt_with_a_warning(run: Path) -> None:
    rep = _first_rep_with(run, lambda r: bool(r.files.qlogs))
    good = rep.rtt
    table = cache.RepCache(rep.path).path("rtt")
    table.write_bytes(b"PAR1 not really parquet")
    with pytest.warns(cache.CacheWarning):
        rebuilt = RepView(rep.path, rep.workload, rep.pair, rep.rep).rtt
    pd.testing.assert_frame_equal(rebuilt.reset_index(drop=True), good.reset_index(drop=True),
                                  check_dtype=False)


def test_a_pruned_rep_reads_the_same_from_its_derived_tables(run: Path) -> None:
    full = _everything(run)  # derives every table
    for p in list(run.rglob("rep-*/*.pcap*")):
        p.unlink()
    assert not list(run.rglob("rep-*/*.pcap*"))
    _assert_same(full, _everything(run))
