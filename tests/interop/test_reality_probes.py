"""Active probing: the listener must answer every probe exactly as the target does (issue 3)."""

from __future__ import annotations

import pytest
from peers_harness import PeerHarness, Pki, WwwDir
from reality_probes import PROBES, Probe, send_and_listen, shape
from reality_support import RealityLab, assert_relayed, capture, flows, replies

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]


@pytest.mark.parametrize("target", ["ngtcp2", "quicgo"])
def test_probes_see_only_what_the_target_sends(peer_harness: PeerHarness, pki: Pki,
                                               www: WwwDir, target: str) -> None:
    h = peer_harness
    lab = RealityLab(h, pki, www, target=target)
    report = []
    for probe in PROBES:
        report.append(_one(h, lab, probe))
    print("\n".join(report))
    assert lab.accepted() == 0


def _one(h: PeerHarness, lab: RealityLab, probe: Probe) -> str:
    before = lab.rejected(probe.reason)
    with capture(h, f"probe-{probe.name.replace(' ', '-')}", lab.port, lab.target_port) as wire:
        sent = probe.build(lab.client_config)
        prober, via_listener = send_and_listen(sent, ("127.0.0.1", lab.port))
    _, direct = send_and_listen(probe.build(lab.client_config), ("127.0.0.1", lab.target_port))
    # The listener counted the probe under the expected reason and opened one relay flow.
    assert lab.rejected(probe.reason) == before + 1, (probe.name, lab.log()[-2000:])
    relay = flows(wire, to_port=lab.target_port)
    assert len(relay) == 1, (probe.name, relay.keys())
    (relay_addr, relayed), = relay.items()
    assert [d.payload for d in relayed] == sent, probe.name  # untouched, one by one
    # Everything the prober got is, datagram for datagram, what the target sent on the relay flow.
    from_target = replies(wire, from_port=lab.target_port, to=relay_addr)
    to_prober = replies(wire, from_port=lab.port, to=prober)
    assert_relayed(from_target, to_prober)
    assert via_listener == [d.payload for d in to_prober], probe.name
    # And it looks like asking the target directly: silence for silence, same kind of answer.
    assert bool(via_listener) == bool(direct), (probe.name, len(via_listener), len(direct))
    if direct:
        assert shape(via_listener[0]) == shape(direct[0]), probe.name
    return (f"{lab.target_name:7s} {probe.name:32s} reason={probe.reason:17s} "
            f"listener={len(via_listener)} datagrams direct={len(direct)} datagrams "
            f"first={shape(via_listener[0]) if via_listener else '-'}")
