"""Lab tests of capture (tcpdump/editcap/tshark) and the link check on a real topology."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from quicreality.scenarios.capture import (
    inject_secrets,
    merge_keylogs,
    start_capture,
    tshark_ek,
    tshark_fields,
)
from quicreality.scenarios.linkcheck import check_link
from quicreality.scenarios.model import Impairment, Link
from quicreality.scenarios.nsutil import socket_in_netns
from quicreality.scenarios.topology import LINK_IF, Topology, new_run_id

pytestmark = [pytest.mark.lab]


@pytest.fixture(autouse=True)
def _preconditions() -> None:
    """Root and the capture/traffic tools are requirements (installed by scripts/setup.sh)."""
    assert os.geteuid() == 0, "lab tests need root (network namespaces, TUN): run them as root"
    missing = [t for t in ("tcpdump", "tshark", "editcap", "iperf3", "ping") if shutil.which(t) is None]
    assert not missing, f"not installed: {', '.join(missing)}: run scripts/setup.sh"


def test_capture_both_sides_of_the_lossy_link(tmp_path: Path) -> None:
    link = Link(to_server=Impairment(delay_ms=5, loss=0.2), to_client=Impairment(delay_ms=5))
    with Topology.create(new_run_id(), link, seed=3, workdir=str(tmp_path)) as topo:
        caps = [start_capture(topo.exec_argv(h, []), LINK_IF, str(tmp_path / f"{h}.pcap"),
                              "udp port 6000") for h in ("client", "server")]
        tx = socket_in_netns(topo.ns("client"))
        for i in range(200):
            tx.sendto(i.to_bytes(4, "big") + bytes(96), (topo.addr("server"), 6000))
            time.sleep(0.0005)
        tx.close()
        counts = [c.stop(settle_s=0.5) for c in caps]
    stats = topo.emulator_stats
    assert stats is not None
    dropped = stats["to_server"]["dropped"]["loss"]
    seen = tshark_fields(str(tmp_path / "client.pcap"), ["data.data"], "udp")
    print("client-side missing", sorted(set(range(200)) - {int(r["data.data"][:8], 16) for r in seen}))
    assert counts == [200, 200 - dropped]
    rows = tshark_fields(str(tmp_path / "server.pcap"), ["frame.time_epoch", "ip.src", "udp.length"],
                         "udp")
    assert len(rows) == 200 - dropped
    assert {r["ip.src"] for r in rows} == {topo.addr("client")}
    assert {r["udp.length"] for r in rows} == {"108"}
    ek = tshark_ek(str(tmp_path / "client.pcap"), "udp", ["udp.dstport"])
    assert len(ek) == 200 and ek[0]["udp_dstport"] in (["6000"], "6000")
    k1 = tmp_path / "client.keys"
    k1.write_text("CLIENT_HANDSHAKE_TRAFFIC_SECRET " + "ab" * 32 + " " + "cd" * 32 + "\n")
    keys = tmp_path / "keys.log"
    assert merge_keylogs([str(k1), str(tmp_path / "server.keys")], str(keys)) == 1
    out = inject_secrets(str(tmp_path / "server.pcap"), str(keys), str(tmp_path / "server.pcapng"))
    assert len(tshark_fields(out, ["frame.number"])) == 200 - dropped


def test_link_check_passes_on_a_correct_link_and_reports_measurements() -> None:
    link = Link.symmetric(Impairment(delay_ms=10, rate_mbit=20, queue_packets=50, loss=0.02))
    with Topology.create(new_run_id(), link, seed=1) as topo:
        res, m = check_link(topo, link, probe_s=1.5, directions=("to_client",))
        print(res.summary())
    assert res.ok, res.summary()
    assert m.rtt_ms is not None and m.rate_mbit["to_client"] > 0


def test_link_check_fails_loudly_when_link_differs() -> None:
    built = Link.symmetric(Impairment(delay_ms=10, rate_mbit=10, queue_packets=50))
    claimed = Link.symmetric(Impairment(delay_ms=15, rate_mbit=20, queue_packets=50))
    with Topology.create(new_run_id(), built, seed=1) as topo:
        res, _ = check_link(topo, claimed, probe_s=1.0, directions=("to_client",))
    assert not res.ok
    assert {i.name for i in res.items if not i.ok} == {"rtt", "rate.to_client"}
