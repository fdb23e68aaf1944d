"""The censor's active prober (sans-IO): the probe classes, answer shapes, verdicts, and the
prober's delay in the emulator's censor stage; on crafted Initials from our own client code."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
from censor_helpers import ALLOWED, hello_of, ip, plain_flight, reality_flight

from quicreality.scenarios.censor import CensorConfigError, load_censor
from quicreality.scenarios.censor.core import ProbeRequest
from quicreality.scenarios.censor.prober import (
    PROBE_CLASSES,
    ProbeSession,
    answer_shape,
    build_probes,
    comparable,
)
from quicreality.scenarios.emulator.censor_stage import CensorStage

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sim"))
from simpair import CLIENT_ADDR, SimPair

SERVER, TARGET = ("10.99.2.2", 443), ("10.99.3.2", 443)


def rng(seed: int = 3):  # type: ignore[no-untyped-def]
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


def request(flight: list[bytes]) -> ProbeRequest:
    return ProbeRequest(("10.99.1.2", 40000, *SERVER), ALLOWED, tuple(flight), "active-probe",
                        180.0, 0.0)


def test_every_probe_class_is_built_and_replays_keep_the_clients_hello() -> None:
    flight = reality_flight("chrome")
    probes = {p.name: p for p in build_probes(request(flight), rng())}
    assert list(probes) == list(PROBE_CLASSES)
    dcid = flight[0][6:6 + flight[0][5]]
    assert probes["replay"].server == probes["replay"].target == (dcid, tuple(flight))
    re = probes["rekeyed-replay"]
    assert len({re.server[0], re.target[0], dcid}) == 3  # fresh, and one per endpoint
    assert len(re.server[1]) == len(flight)  # one datagram per original datagram
    assert hello_of(list(re.server[1])) == hello_of(list(re.target[1])) == hello_of(flight)
    assert probes["truncated-initial"].server[1] == (flight[0][:-60],)
    assert probes["random-long-header"].server[1][0][1:5] == b"\x1a\x2a\x3a\x4a"
    assert probes["not-a-client-hello"].server[0] != probes["not-a-client-hello"].target[0]


def test_answer_shape_reads_a_server_initial_with_the_public_keys() -> None:
    pair = SimPair()
    pair.client.connect(("10.0.0.2", 443), 0.0)
    first = [d for d, _ in pair.client.datagrams_to_send(0.0)]
    odcid = first[0][6:6 + first[0][5]]
    got = pair.endpoint.receive_datagram(first[0], CLIENT_ADDR, 0.0)
    assert got.connection is not None
    answers = [d for d, _ in got.connection.datagrams_to_send(0.0)]
    shape = answer_shape(answers[0], odcid)
    assert shape.startswith("initial scid=") and " sh cs=0x1301 ks=0x001d ext=" in shape, shape
    assert answer_shape(answers[0], bytes(8)) == "initial-unreadable"  # wrong keys
    assert answer_shape(b"\x80" + bytes(4) + b"\x00\x00", b"") == "version-negotiation"
    assert answer_shape(b"\x40" + bytes(30), odcid) == "short"
    assert answer_shape(b"", odcid) == "empty"


def session() -> ProbeSession:
    return ProbeSession(request(plain_flight(ALLOWED)), server=SERVER, target=TARGET,
                        timeout_s=1.5, rng=rng(), now=10.0)


def test_endpoints_alternate_server_and_target_per_probe() -> None:
    s = session()
    ends = s.endpoints()
    assert [a for a, _ in ends] == [SERVER, TARGET] * len(PROBE_CLASSES)
    assert s.get_timer() == 11.5


@pytest.mark.parametrize("server_answers, verdict", [
    ({}, "target-like"),  # both silent on every probe
    ({2: [b"\x80" + bytes(6)]}, "distinct"),  # only the server answers the random long header
])
def test_verdict_compares_probe_by_probe(server_answers: dict[int, list[bytes]],
                                         verdict: str) -> None:
    s = session()
    for i, datagrams in server_answers.items():
        for d in datagrams:
            s.receive(2 * i, d, 10.1)
    s.handle_timer(11.0)
    assert not s.done
    s.handle_timer(11.5)
    assert s.done and s.get_timer() is None
    s.receive(1, b"late", 12.0)  # after the listening: not counted
    got, detail = s.verdict()
    assert got == verdict
    if verdict == "distinct":
        assert "probe random-long-header: server answered ['version-negotiation']" in detail
        assert "target ['nothing']" in detail


def test_same_answers_on_both_sides_are_target_like() -> None:
    s = session()
    vn = b"\x80" + bytes(6)
    s.receive(4, vn, 10.1)
    s.receive(5, vn, 10.2)
    s.handle_timer(12.0)
    verdict, detail = s.verdict()
    assert verdict == "target-like" and "random-long-header: version-negotiation" in detail


def test_stage_sends_the_prober_delay_s_after_the_decision(tmp_path: Path) -> None:
    # Without a target the stage answers at once with "no prober configured": that answer's time
    # shows when the probe was started (sockets are only opened with a target).
    table = load_censor({"active-probe": {"ports": [443], "delay_s": 1.0}})
    log = tmp_path / "censor.jsonl"
    stage = CensorStage(table, str(log), 0.0, server_netns="unused", target=None,
                        prober_addr=None)

    def verdicts() -> list[dict]:
        return [r for r in map(json.loads, log.read_text().splitlines()) if "probe_verdict" in r]

    assert stage.to_server(ip(plain_flight(ALLOWED)[0]), 0.2)
    stage.poll(0.2)
    assert stage.next_timer() == pytest.approx(1.2)
    stage.poll(1.1)
    assert verdicts() == []
    stage.poll(1.2)
    got = verdicts()
    assert len(got) == 1 and got[0]["t"] == pytest.approx(1.2) and got[0]["action"] == "pass"
    assert stage.next_timer() is None
    stage.close()


@pytest.mark.parametrize("table, field", [
    ({"active-probe": {"delay_s": -1}}, "censor.active-probe.delay_s"),
    ({"active-probe": {"timeout_s": 0}}, "censor.active-probe.timeout_s"),
    ({"policies": ["gfw-2026"]}, "censor.policies[0]"),
    ({"active-probe": {"when": [{"feature": "sni"}]}}, "censor.active-probe.when[0]"),
])
def test_prober_settings_are_validated_naming_the_field(table: dict, field: str) -> None:
    with pytest.raises(CensorConfigError) as e:
        load_censor(table)
    assert e.value.field_path == field


def test_unreadable_packets_count_only_as_encrypted() -> None:
    sh = "initial scid=4 sh cs=0x1301 ks=0x001d ext=0x002b,0x0033"
    assert comparable({sh, "handshake", "short"}) == comparable({sh, "handshake"})
    assert comparable({sh, "handshake"}) == ["encrypted", sh]
    assert comparable(set()) == [] and comparable({"version-negotiation"}) == ["version-negotiation"]


def test_the_verdict_record_carries_every_probes_shapes() -> None:
    from quicreality.scenarios.censor import build_censor

    c = build_censor({"active-probe": {"ports": [443]}})
    assert c.to_server(ip(plain_flight(ALLOWED)[0]), 0.0) is None
    req = c.next_probe()
    assert req is not None
    s = session()
    s.receive(4, b"\x80" + bytes(6), 10.1)
    s.handle_timer(12.0)
    verdict, detail = s.verdict()
    c.probe_result(req, verdict, detail, 2.5, shapes=s.shapes())
    rec = c.pop_records()[-1]
    assert rec["probe_verdict"] == "distinct" and rec["action"] == "block"
    assert [x["probe"] for x in rec["probe_shapes"]] == list(PROBE_CLASSES)
    assert rec["probe_shapes"][2] == {"probe": "random-long-header",
                                      "server": ["version-negotiation"], "target": []}
