"""The chain topology's scenario schema: ``[link2]``, ``kind = "chain"``, ``hops``, ``parallel``,
and the catalog's ``chain-wan``."""

from __future__ import annotations

import tomllib

import pytest

from quicreality.scenarios.catalog import ScenarioError, find_scenario, parse_scenario

CHAIN = """
[scenario]
name = "c"

[link]
delay_ms = 5

[link2]
delay_ms = 7

[[workload]]
name = "w"
kind = "chain"
client = "iperf3"
server = "iperf3"
seconds = 2
"""


def test_a_chain_scenario_has_two_links_and_defaults_to_two_hops() -> None:
    s = parse_scenario(tomllib.loads(CHAIN + "parallel = 4\n"))
    assert s.link2 is not None and s.link2.to_server.delay_ms == 7
    w = s.workloads[0]
    assert (w.hops, w.parallel, w.requires) == (2, 4, frozenset({"relay", "reality"}))
    assert s.to_dict()["link2"]["to_server"]["delay_ms"] == 7
    direct = parse_scenario(tomllib.loads(CHAIN + "hops = 0\n")).workloads[0]
    assert direct.requires == frozenset()  # direct TCP needs no feature of ours


@pytest.mark.parametrize(("doc", "field"), [
    (CHAIN.replace("[link2]\ndelay_ms = 7\n", ""), "link2"),
    (CHAIN + "hops = 3\n", "workload[0].hops"),
    (CHAIN + "parallel = 0\n", "workload[0].parallel"),
    (CHAIN.replace("delay_ms = 7", "delay_ms = -1"), "link2"),
    (CHAIN + '\n[[workload]]\nname = "d"\nkind = "iperf3"\nclient = "iperf3"\n'
     'server = "iperf3"\nseconds = 1\n', "link2"),
    (CHAIN.replace('kind = "chain"', 'kind = "iperf3"') + "hops = 1\n", "workload[0].hops"),
])
def test_chain_errors_name_the_field(doc: str, field: str) -> None:
    with pytest.raises(ScenarioError) as ei:
        parse_scenario(tomllib.loads(doc), source="x.toml")
    assert ei.value.field_path == field, str(ei.value)


def test_chain_wan_runs_two_hops_one_hop_and_direct_tcp_each_three_ways() -> None:
    s = find_scenario("chain-wan")
    assert s.link2 is not None and not s.link_check.enabled
    modes = {(w.hops, w.reverse, w.parallel) for w in s.workloads}
    assert modes == {(h, r, p) for h in (0, 1, 2) for r, p in ((False, 1), (True, 1), (False, 4))}
    assert all(w.congestion == "cubic" for w in s.workloads)
    assert {w.name for w in s.workloads if w.baseline} == {"tcp-fwd", "tcp-rev", "tcp-p4"}
