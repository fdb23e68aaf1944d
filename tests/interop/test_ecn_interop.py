"""ECN against real peers on loopback, verified on the wire (RFC 9000 §13.4).

Each run is captured on ``lo`` with tcpdump, in a fresh namespace whose ``lo`` segments UDP GSO in
software (the ``ns`` fixture), so every datagram is seen as the receiver gets it, and decrypted by
tshark with both key logs. We check
the IP header's ECN field of each side's datagrams and the ACK_ECN counts each side sends:
our datagrams go out ECT(0), the peer's ACK_ECN frames count them, and, where the peer marks
its own datagrams (ngtcp2 does), our ACK_ECN frames count those; our qlog says ``capable``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from peers_harness import PeerHarness, Pki, WwwDir, in_namespace

from quicreality.scenarios.capture import merge_keylogs, start_capture, tshark_fields
from quicreality.scenarios.fingerprint_capture import LoopbackNamespace
from quicreality.scenarios.peers import DownloadRequest, ServeRequest, get_peer
from quicreality.scenarios.peers.base import url_for

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

FIELDS = ("udp.srcport", "ip.dsfield.ecn", "quic.frame_type", "quic.ack.ect0_count",
          "quic.ack.ecn_ce_count")


def _our_qlog(qlog_dir: Path) -> tuple[list[str], int]:
    """ECN states in our qlog, and the largest ECT(0) count of the ACK frames we received (our
    frame codec's reading of the peer's ACK_ECN frames)."""
    states, ack_ect0 = [], 0
    for path in qlog_dir.glob("*.sqlog"):
        for rec in path.read_text().split("\x1e"):
            if not rec.strip():
                continue
            ev = json.loads(rec)
            if ev.get("name") == "recovery:ecn_state_updated":
                states.append(ev["data"]["new"])
            elif ev.get("name") == "transport:packet_received":
                for fr in ev["data"].get("frames", ()):
                    if fr.get("frame_type") == "ack":
                        ack_ect0 = max(ack_ect0, fr.get("ect0", 0))
    return states, ack_ect0


def _run(h: PeerHarness, pki: Pki, www: WwwDir, port: int, server: str, client: str,
         ns: LoopbackNamespace) -> tuple[dict[str, dict[str, object]], tuple[list[str], int]]:
    """Download 10 MB from ``server`` with ``client`` under capture; per side (``server`` /
    ``client``): datagrams, how many were ECT(0) / CE, the largest ECT(0) and CE counts in its
    ACK_ECN frames; and what our qlog says (:func:`_our_qlog`)."""
    pcap = h.path("lo.pcap")
    cap = start_capture(ns.exec_prefix, "lo", str(pcap), f"udp port {port}")
    try:
        h.serve(in_namespace(get_peer(server), ns), ServeRequest(
            www=www.path, port=port, cert=pki.cert, key=pki.key,
            qlog_dir=h.path("qlog", "server"), keylog=h.path("s.keys")))
        url = url_for("127.0.0.1", port, "10M.bin")
        out = h.download(in_namespace(get_peer(client), ns), DownloadRequest(
            urls=(url,), out_dir=h.path("out"), ca=pki.ca, qlog_dir=h.path("qlog", "client"),
            keylog=h.path("c.keys")), timeout=180)
        assert out.finished.returncode == 0, out.describe()
        assert all(r.ok for r in out.results), out.describe()
    finally:
        cap.stop(settle_s=0.5)
    keys = h.path("all.keys")
    merge_keylogs([str(p) for p in (h.path("s.keys"), h.path("c.keys")) if p.exists()], str(keys))
    # Decoded as QUIC by port: tshark's heuristic needs the flow's first Initial, which a capture
    # started late under load can miss ("0 datagrams" then, with everything on the wire).
    rows = tshark_fields(str(pcap), FIELDS, "quic", keylog=str(keys),
                         decode_as=[f"udp.port=={port},quic"])
    sides: dict[str, dict[str, object]] = {
        s: {"datagrams": 0, "ect0": 0, "ce": 0, "ack_ect0": 0, "ack_ce": 0} for s in ("server", "client")}
    for row in rows:
        side = sides["server" if row["udp.srcport"] == str(port) else "client"]
        side["datagrams"] = int(side["datagrams"]) + 1  # type: ignore[call-overload]
        ecn = row["ip.dsfield.ecn"]
        if ecn == "2":
            side["ect0"] = int(side["ect0"]) + 1  # type: ignore[call-overload]
        elif ecn == "3":
            side["ce"] = int(side["ce"]) + 1  # type: ignore[call-overload]
        for key, field in (("ack_ect0", "quic.ack.ect0_count"), ("ack_ce", "quic.ack.ecn_ce_count")):
            for v in filter(None, row[field].split(",")):
                side[key] = max(int(side[key]), int(v))  # type: ignore[call-overload]
    ours = "server" if server == "ours" else "client"
    qlog = _our_qlog(h.path("qlog", ours))
    print(f"{server} -> {client}: wire {sides}; our qlog: states {qlog[0]}, peer's ACK ect0 {qlog[1]}")
    return sides, qlog


@pytest.mark.parametrize("peer", ["ngtcp2", "quicgo"])
@pytest.mark.parametrize("role", ["server", "client"])
def test_ecn_on_the_wire_with(peer_harness: PeerHarness, pki: Pki, www: WwwDir, udp_port: int,
                              ns: LoopbackNamespace,
                              peer: str, role: str) -> None:
    server, client = ("ours", peer) if role == "server" else (peer, "ours")
    sides, (states, qlog_ack_ect0) = _run(peer_harness, pki, www, udp_port, server, client, ns)
    us, them = sides[role], sides["client" if role == "server" else "server"]
    # We marked (nearly) everything ECT(0) and the peer's ACK_ECN frames counted it. The peer's
    # ACKs are read from our qlog (our codec's parse) as well, in case tshark cannot decrypt some
    # of the peer's packets (a capture that missed the first Initials).
    assert int(us["ect0"]) > 0.9 * int(us["datagrams"]), sides  # type: ignore[call-overload]
    reported = max(int(them["ack_ect0"]), qlog_ack_ect0)  # type: ignore[call-overload]
    assert reported > 0.5 * int(us["ect0"]), (sides, qlog_ack_ect0)  # type: ignore[call-overload]
    assert states and states[-1] == "capable", states
    if peer == "ngtcp2":  # it marks its own datagrams: ours must count them back
        assert int(them["ect0"]) > 0, sides  # type: ignore[call-overload]
        assert int(us["ack_ect0"]) > 0, sides  # type: ignore[call-overload]


@pytest.mark.parametrize("role", ["server", "client"])
def test_peer_without_ecn_fails_validation_and_we_stop_marking(
        peer_harness: PeerHarness, pki: Pki, www: WwwDir, udp_port: int, ns: LoopbackNamespace,
        role: str) -> None:
    # aioquic neither marks nor reports ECN counts: its plain ACKs acknowledge our marked
    # packets, so validation fails (RFC 9000 §13.4.2.1) and the rest goes out Not-ECT.
    server, client = ("ours", "aioquic") if role == "server" else ("aioquic", "ours")
    sides, (states, qlog_ack_ect0) = _run(peer_harness, pki, www, udp_port, server, client, ns)
    us, them = sides[role], sides["client" if role == "server" else "server"]
    assert states == ["failed"], states
    assert qlog_ack_ect0 == 0 and int(them["ack_ect0"]) == 0, sides  # type: ignore[call-overload]
    assert 0 < int(us["ect0"]) <= 12, sides  # the testing period's packets only
    assert int(us["datagrams"]) > 100, sides  # type: ignore[call-overload]
