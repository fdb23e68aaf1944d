"""Sweeps (issue 16): expansion into points, seeds, --quick/--only/--reps, errors naming fields."""

from __future__ import annotations

import tomllib

import pytest

from quicreality.analysis.regression import host_description
from quicreality.scenarios.catalog import ScenarioError, find_scenario, parse_scenario
from quicreality.scenarios.results import host_info
from quicreality.scenarios.runner import main_list
from quicreality.scenarios.sweep import point_label, point_seed

BASE = """
[scenario]
name = "sw"
seed = 7

[link]
rate_mbit = 20
delay_ms = 10

[quick]
max_size = "1MB"

[[workload]]
name = "dl"
kind = "download"
client = "ours"
server = "ours"
size = "5MB"

[[workload]]
name = "tcp"
kind = "iperf3"
client = "iperf3"
server = "iperf3"
seconds = 8
"""


def _sc(sweep: str, extra: str = "", base: str = BASE):
    return parse_scenario(tomllib.loads(base + extra + "\n[sweep]\n" + sweep), source="x.toml")


def test_cartesian_product_in_file_order() -> None:
    sc = _sc('loss = ["0%", "1%", "5%"]\ndelay_ms = [5, 50]\n')
    pts = sc.points()
    assert len(pts) == 6
    assert [p.point["params"] for p in pts[:3]] == [
        {"loss": "0%", "delay_ms": 5}, {"loss": "0%", "delay_ms": 50}, {"loss": "1%", "delay_ms": 5}]
    assert pts[5].link.to_server.loss == pytest.approx(0.05)
    assert pts[5].link.to_client.delay_ms == 50 and pts[5].link.to_client.rate_mbit == 20
    assert pts[0].name == "sw.loss-0pct.delay_ms-5"
    assert [p.point["index"] for p in pts] == list(range(6))
    assert sc.total_reps() == 6 * 2 * 3
    # every point is a full scenario: its dict names the point, its data has no [sweep]
    d = pts[2].to_dict()
    assert d["point"]["params"] == {"loss": "1%", "delay_ms": 5} and "sweep" not in pts[2].data


def test_workload_option_varies_the_workloads_that_set_it() -> None:
    sc = _sc('workload.size = ["1MB", "2MB"]\n')
    pts = sc.points()
    assert [p.workloads[0].size_bytes for p in pts] == [1_000_000, 2_000_000]
    assert all(p.workloads[1].seconds == 8 for p in pts)
    assert pts[1].name == "sw.size-2mb"


def test_seed_derivation_is_stable_and_documented() -> None:
    sc = _sc('loss = ["0%", "1%"]\n')
    p1 = sc.points()[1]
    assert p1.seed == point_seed(7, {"loss": "1%"})
    assert p1.rep_seed(2) == p1.seed * 1000 + 2
    # adding values to the sweep does not move an existing point's seed
    more = _sc('loss = ["0%", "0.5%", "1%"]\n')
    assert more.points()[2].seed == p1.seed
    # a different base seed (--seed) moves every point's seed; distinct points differ
    import dataclasses
    assert dataclasses.replace(sc, seed=8).points()[1].seed != p1.seed
    assert sc.points()[0].seed != p1.seed


def test_quick_only_reps_apply_to_every_point() -> None:
    sc = _sc('loss = ["0%", "1%", "5%"]\ndelay_ms = [5, 50]\n',
             base=BASE.replace('max_size = "1MB"', 'max_size = "1MB"\nsweep = { loss = ["5%"] }'))
    q = sc.quickened()
    pts = q.points()
    assert [p.point["params"] for p in pts] == [{"loss": "5%", "delay_ms": 5},
                                                 {"loss": "5%", "delay_ms": 50}]
    assert all(p.quick and p.workloads[0].size_bytes == 1_000_000 for p in pts)
    o = sc.only(["tcp"]).with_reps(2)
    assert all([w.name for w in p.workloads] == ["tcp"] for p in o.points())
    assert o.total_reps() == 6 * 2


@pytest.mark.parametrize("sweep, extra, field", [
    ('loss = ["0%", "lots"]\n', "", "sweep.loss[1]"),
    ('loss = ["0%", "120%"]\n', "", "sweep.loss[1]"),
    ('delay_ms = [5, -1]\n', "", "sweep.delay_ms[1]"),
    ('bogus = [1]\n', "", "sweep.bogus"),
    ('loss = []\n', "", "sweep.loss"),
    ('loss = "1%"\n', "", "sweep.loss"),
    ('loss = ["1%", "1%"]\n', "", "sweep.loss[1]"),
    ('workload.size = ["1MB", "big"]\n', "", "sweep.workload.size[1]"),
    ('workload.name = ["a"]\n', "", "sweep.workload.name"),
    ('workload.reality = [true]\n', "", "sweep.workload.reality"),
    ('loss = ["1%"]\n', "[link.to_server]\nloss = \"2%\"\n", "sweep.loss"),
])
def test_errors_name_the_field(sweep: str, extra: str, field: str) -> None:
    with pytest.raises(ScenarioError) as ei:
        _sc(sweep, extra)
    assert ei.value.field_path == field
    assert str(ei.value).startswith(f"x.toml: {field}: ")


def test_quick_sweep_values_must_come_from_the_sweep() -> None:
    base = BASE.replace('max_size = "1MB"', 'max_size = "1MB"\nsweep = { loss = ["3%"] }')
    with pytest.raises(ScenarioError, match=r"quick\.sweep\.loss\[0\]: '3%' is not one of"):
        _sc('loss = ["0%", "5%"]\n', base=base)
    with pytest.raises(ScenarioError, match=r"quick\.sweep: there is no \[sweep\]"):
        parse_scenario(tomllib.loads(base), source="x.toml")


def test_catalog_loss_sweep() -> None:
    sc = find_scenario("loss-sweep")
    pts = sc.points()
    assert len(pts) >= 30
    losses = {p.link.to_server.loss for p in pts}
    assert min(losses) == 0.0 and max(losses) == pytest.approx(0.05)
    assert len({p.link.base_rtt_ms for p in pts}) >= 3
    names = {w.name: w for w in sc.workloads}
    assert names["ours"].client == "ours" and not names["ours"].reality
    assert names["reality"].reality
    assert names["quicgo"].client == names["quicgo"].server == "quicgo"
    assert {names["tcp-bbr"].congestion, names["tcp-cubic"].congestion} == {"bbr", "cubic"}
    assert len({p.name for p in pts}) == len(pts) and len({p.seed for p in pts}) == len(pts)
    assert len(sc.quickened().points()) <= 6


def test_list_verbose_shows_point_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_list(["-v"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "sweep:" in ln)
    assert "= 30 points" in line and "--quick: 3 points" in line


def test_point_label_is_a_directory_name() -> None:
    assert point_label({"loss": "0.5%", "workload.size": "10MiB", "reverse": True}) == \
        "loss-0.5pct.size-10mib.reverse-on"


def test_host_info_matches_the_baselines_host_description() -> None:
    assert host_info() == host_description()


def test_cap_and_no_link_check_keep_points_and_replay_in_a_dask_unit() -> None:
    """--max-size/--max-seconds/--no-link-check: every point capped, same points, seeds and
    units; a Dask unit's rebuilt point is the coordinator's."""
    from quicreality.scenarios.executors.daskexec import unit_specs
    from quicreality.scenarios.executors.unit import UnitSpec, scenario_of
    from quicreality.scenarios.transforms import capped, without_link_check

    sc = _sc('loss = ["0%", "1%", "5%"]\ndelay_ms = [5, 50]\n')
    c = without_link_check(capped(sc, 2_000_000, 4.0))
    pts, orig = c.points(), sc.points()
    assert [p.name for p in pts] == [p.name for p in orig]
    assert [p.seed for p in pts] == [p.seed for p in orig]
    assert c.total_reps() == sc.total_reps() and not c.quick
    for p in pts:
        dl, tcp = p.workloads
        assert (dl.size_bytes, tcp.seconds) == (2_000_000, 4.0)
        assert dl.effective_timeout_s() == 60.0 + 16.0  # derived from the capped size
        assert not p.link_check.enabled and p.to_dict()["link_check"]["enabled"] is False
    # a cap above the file's values changes nothing
    big = capped(sc, 50_000_000, 100.0).points()[0]
    assert (big.workloads[0].size_bytes, big.workloads[1].seconds) == (5_000_000, 8)
    for spec in unit_specs(c, "r", "auto", {"kind": "dask"}):
        p = scenario_of(UnitSpec.from_json(spec.to_json()))
        twin = next(q for q in pts if q.name == p.name)
        assert p.workloads == twin.workloads and p.seed == twin.seed
        assert p.link_check == twin.link_check


def test_cap_shrinks_an_explicit_timeout_and_rejects_nonsense() -> None:
    from quicreality.scenarios.transforms import apply_transform, capped

    sc = _sc('loss = ["0%"]\n', base=BASE.replace('size = "5MB"', 'size = "5MB"\ntimeout_s = 400'))
    assert capped(sc, 1_000_000, None).points()[0].workloads[0].timeout_s == 80.0
    assert capped(sc, 100_000, None).points()[0].workloads[0].timeout_s == 60.0
    with pytest.raises(ValueError, match="max size"):
        capped(sc, 0, None)
    with pytest.raises(ValueError, match="unknown scenario transform"):
        apply_transform(sc, ("bogus",))
