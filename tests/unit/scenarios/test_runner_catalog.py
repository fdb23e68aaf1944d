"""Scenario files: the catalog loads, lossy-wan is what issue 5 says, errors name the field."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from quicreality.scenarios.catalog import (
    CATALOG_DIR,
    ScenarioError,
    catalog,
    find_scenario,
    load_scenario,
    parse_scenario,
    parse_size,
)

MINIMAL = """
[scenario]
name = "t"
description = "a test"

[link]
delay_ms = 5

[[workload]]
name = "w"
kind = "download"
client = "ours"
server = "quicgo"
size = "1MB"
"""


def _doc(extra: str = "", base: str = MINIMAL) -> dict:
    return tomllib.loads(base + extra)


def test_every_catalog_scenario_loads_and_has_a_description() -> None:
    names = {s.name for s in catalog()}
    assert {"lossy-wan", "interop-goodput", "clean-lan", "long-rtt", "bursty-loss", "reorder",
            "blackhole", "bufferbloat"} <= names
    for s in catalog():
        assert s.description and s.workloads
        assert Path(s.source).parent == CATALOG_DIR
        q = s.quickened()
        assert q.quick and all(q.reps_of(w) >= 1 for w in q.workloads)


def test_lossy_wan_is_the_issue_link_and_workloads() -> None:
    s = find_scenario("lossy-wan")
    for imp in (s.link.to_server, s.link.to_client):
        assert imp.rate_mbit == 50 and imp.delay_ms == 20 and imp.loss == pytest.approx(0.01)
        assert imp.queue_bytes == 250_000  # 50 Mbit/s x 40 ms = one BDP
    w = {x.name: x for x in s.workloads}
    assert s.reps == 3
    assert w["reality-h3"].reality and w["reality-h3"].size_bytes == 20_000_000
    assert (w["curl-ours"].client, w["curl-ours"].server) == ("curl", "ours")
    assert (w["quicgo-ours"].client, w["ours-quicgo"].server) == ("quicgo", "quicgo")
    assert {w["relay-iperf3-fwd"].reverse, w["relay-iperf3-rev"].reverse} == {False, True}
    assert w["relay-iperf3-fwd"].seconds == 10 and w["relay-iperf3-fwd"].requires == {
        "reality", "relay"}
    assert w["fallback-curl"].kind == "fallback" and w["fallback-curl"].requires == {"reality"}
    baselines = {n for n, x in w.items() if x.baseline}
    assert {"quicgo-quicgo", "ngtcp2-ngtcp2", "tcp-cubic", "tcp-bbr"} <= baselines
    assert w["tcp-cubic"].congestion == "cubic" and w["tcp-bbr"].congestion == "bbr"


def test_interop_goodput_is_the_runner_link() -> None:
    s = find_scenario("interop-goodput")
    imp = s.link.to_client
    assert (imp.rate_mbit, imp.delay_ms, imp.queue_packets) == (10, 15, 25)
    assert s.reps == 5
    pairs = {w.pair for w in s.workloads}
    assert {"quicgo__quicgo", "ours__ours"} <= pairs
    assert {w.size_bytes for w in s.workloads if w.kind == "download"} == {10 * 2**20}


def test_quick_shrinks_sizes_durations_and_reps() -> None:
    s = find_scenario("lossy-wan")
    q = s.quickened()
    assert q.reps == 1
    for w in q.workloads:
        assert q.reps_of(w) == 1
        if w.size_bytes is not None:
            assert w.size_bytes <= 2_000_000
        if w.seconds is not None:
            assert w.seconds <= 3
    assert q.link_check.probe_s <= 1.0
    assert [w.name for w in q.workloads] == [w.name for w in s.workloads]


def test_per_workload_quick_override_and_skip() -> None:
    s = parse_scenario(_doc("""
quick = { size = "10kB", reps = 2 }

[[workload]]
name = "x"
kind = "iperf3"
client = "iperf3"
server = "iperf3"
seconds = 10
quick = { skip = true }
"""))
    q = s.quickened()
    assert [w.name for w in q.workloads] == ["w"]
    assert q.workloads[0].size_bytes == 10_000 and q.reps_of(q.workloads[0]) == 2


def test_only_keeps_named_workloads_and_rejects_unknown_ones() -> None:
    s = find_scenario("lossy-wan")
    assert [w.name for w in s.only(["tcp-bbr", "curl-ours"]).workloads] == ["curl-ours", "tcp-bbr"]
    with pytest.raises(ScenarioError, match="no workload 'nope'"):
        s.only(["nope"])


def test_with_reps_and_rep_seeds() -> None:
    s = find_scenario("lossy-wan").with_reps(7)
    assert all(s.reps_of(w) == 7 for w in s.workloads)
    assert s.rep_seed(1) != s.rep_seed(2)
    assert s.rep_seed(3) == s.seed * 1000 + 3


@pytest.mark.parametrize(("value", "expected"), [
    (1234, 1234), ("20MB", 20_000_000), ("10MiB", 10 * 2**20), ("500kB", 500_000),
    ("2 GB", 2 * 10**9), ("1.5MB", 1_500_000), ("7B", 7), ("64", 64)])
def test_parse_size(value: object, expected: int) -> None:
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", ["20 furlongs", "-1", True, 1.5, "1.0000001kB", -3])
def test_parse_size_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_size(value)


@pytest.mark.parametrize(("extra_or_base", "field"), [
    (MINIMAL.replace('size = "1MB"', 'size = "lots"'), "workload[0].size"),
    (MINIMAL.replace('size = "1MB"\n', ""), "workload[0].size"),
    (MINIMAL.replace('kind = "download"', 'kind = "upload"'), "workload[0].kind"),
    (MINIMAL.replace('client = "ours"', 'client = "iperf3"'), "workload[0].client"),
    (MINIMAL.replace('server = "quicgo"', 'server = "curl"'), "workload[0].server"),
    (MINIMAL.replace('name = "w"', 'name = "W W"'), "workload[0].name"),
    (MINIMAL.replace("delay_ms = 5", "delay_ms = -5"), "link.to_server.delay_ms"),
    (MINIMAL.replace("delay_ms = 5", 'loss = "150%"'), "link.to_server.loss"),
    (MINIMAL + 'colour = "blue"\n', "workload[0].colour"),
    (MINIMAL.replace('description = "a test"', 'description = "a test"\nreps = 0'),
     "scenario.reps"),
    (MINIMAL.replace('description = "a test"', 'description = "x"\nbackend = "ns3"'),
     "scenario.backend"),
    (MINIMAL + 'reality = true\n', "workload[0].reality"),
    (MINIMAL + '\n[[workload]]\nname = "w"\nkind = "iperf3"\nclient = "iperf3"\n'
     'server = "iperf3"\nseconds = 1\n', "workload[1].name"),
    (MINIMAL + '\n[[workload]]\nname = "i"\nkind = "iperf3"\nclient = "iperf3"\n'
     'server = "iperf3"\n', "workload[1].seconds"),
    (MINIMAL + '\n[quick]\nskip = ["ghost"]\n', "quick.skip"),
    (MINIMAL.replace("[link]\ndelay_ms = 5\n", ""), "link"),
])
def test_errors_name_the_field(extra_or_base: str, field: str) -> None:
    with pytest.raises(ScenarioError) as ei:
        parse_scenario(tomllib.loads(extra_or_base), source="x.toml")
    assert ei.value.field_path == field, str(ei.value)
    assert str(ei.value).startswith(f"x.toml: {field}: ")


def test_load_scenario_reports_bad_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[scenario\n")
    with pytest.raises(ScenarioError, match=r"bad\.toml: toml: "):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.toml")
    with pytest.raises(ScenarioError, match=r"no scenario 'nope'.*lossy-wan"):
        find_scenario("nope")


def test_a_file_outside_the_catalog_loads_by_path_and_takes_its_stem(tmp_path: Path) -> None:
    f = tmp_path / "my-link.toml"
    f.write_text(MINIMAL.replace('name = "t"\n', ""))
    s = find_scenario(str(f))
    assert s.name == "my-link" and s.source == str(f)
    d = s.to_dict()
    assert d["workloads"][0]["pair"] == "ours__quicgo" and d["file"]["link"] == {"delay_ms": 5}


def test_default_timeouts_scale_with_the_work() -> None:
    s = find_scenario("lossy-wan")
    w = {x.name: x for x in s.workloads}
    assert w["curl-ours"].effective_timeout_s() == pytest.approx(60 + 160)
    assert w["tcp-bbr"].effective_timeout_s() == 70


def test_quick_never_lengthens_an_explicit_timeout() -> None:
    # censor-gfw's blocked rows have 8-10 s client timeouts; --quick used to raise them to 60 s
    w = {x.name: x for x in find_scenario("censor-gfw").quickened().workloads}
    assert w["curl-blocked-sni"].effective_timeout_s() == 8
    assert w["reality-session-id"].effective_timeout_s() == 10
    assert w["curl-allowed-sni"].effective_timeout_s() == 30
    doc = _doc('\n[[workload]]\nname = "big"\nkind = "download"\nclient = "ours"\n'
               'server = "quicgo"\nsize = "20MB"\ntimeout_s = 300\n')
    big = {x.name: x for x in parse_scenario(doc).quickened().workloads}["big"]
    assert big.size_bytes == 2_000_000 and big.effective_timeout_s() == 60  # 30 s scaled, floor 60
