"""analysis.sweeps: the Mathis reference, sweep selection and the single-run fallback."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from quicreality.analysis import sweeps


def test_mathis_bound() -> None:
    # 1 % loss, 40 ms RTT: 1448*8/0.04 * 1.2247/0.1 = 3.547 Mbit/s (the lossy-wan TCP figure)
    assert sweeps.mathis_mbit(0.01, 40.0, 50.0) == pytest.approx(3.547, rel=1e-3)
    assert sweeps.mathis_mbit(0.0, 40.0, 50.0) == 50.0  # no loss: the link rate
    assert sweeps.mathis_mbit(1e-6, 40.0, 50.0) == 50.0  # capped
    assert sweeps.mathis_mbit(0.04, 40.0, 50.0) == pytest.approx(3.547 / 2, rel=1e-3)


def test_unknown_sweep_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no sweep 'nope'"):
        sweeps.open_sweep(tmp_path, sweep="nope")


def test_single_run_fallback(tmp_path: Path, sample: Path, monkeypatch: pytest.MonkeyPatch
                             ) -> None:
    monkeypatch.setenv("QR_RUN_DIR", str(sample))
    src = sweeps.open_sweep(tmp_path)  # no runs here: the sample as one point
    try:
        assert src.sweep is None and src.temporary
        pts = sweeps.sweep_points(src)
        assert set(pts["link_loss"]) == {0.01} and set(pts["rtt_ms"]) == {40.0}
        assert all(math.isfinite(v) and v > 0 for v in pts["median"])
        fig = sweeps.sweep_plot(pts)
        assert len(fig.axes) == 1 and fig.axes[0].get_lines()
        assert len(sweeps.where_ran(src)) >= 1
    finally:
        src.close()
    assert not src.results.exists()


def test_cli_prints_points_and_writes_the_png(tmp_path: Path, sample: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("QR_RUN_DIR", str(sample))
    png = tmp_path / "img" / "s.png"
    assert sweeps.main(["--results", str(tmp_path / "none"), "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "sweep: none (a single run)" in out and "link_loss" in out and "host_name" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sweeps.main(["--results", str(tmp_path), "--sweep", "nope"]) == 2
    assert "no sweep 'nope'" in capsys.readouterr().err
