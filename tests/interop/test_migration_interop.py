"""Active migration against real peers over loopback, both roles.

* ngtcp2's gtlsclient against our server with ``--preferred-address``: the client moves to our
  preferred address (QIR's ``connectionmigration`` with us as the server); QIR's path check
  (:mod:`quicreality.scenarios.pathcheck`) on the capture decrypted with our server's keys;
* ngtcp2's gtlsserver with ``--preferred-ipv4-addr``: our client moves to the preferred address
  and its connection ID (RFC 9000 §9.6), as in QIR's ``connectionmigration`` case;
* servers without a preferred address (ngtcp2, quic-go, aioquic, qh3): our client moves to a new
  local port (RFC 9000 §9.2).

The loopback capture, decrypted with our client's key log, must show our PATH_CHALLENGE from the
new port (in the first packet on the new path), the server's PATH_RESPONSE echoing it, the
server's own challenge on the new path answered by us (QIR's check), and the 3 MB body
byte-exact.

Every peer and the capture run in a fresh namespace whose ``lo`` segments UDP GSO in software
(:class:`~quicreality.scenarios.fingerprint_capture.LoopbackNamespace`): on the host's ``lo``
tcpdump sees a GSO send as one super-datagram, which tshark reads as one undecryptable packet, so
a PATH_RESPONSE batched with other packets in one ``sendmsg`` was invisible on the wire.

tshark 4.0 loses the server's direction once a connection moves to a preferred address (it takes
the server's packets from the new address for the client's and fails their AEAD check). Where
the server's packets cannot be decrypted, the frames our client's qlog says it received from the
server stand in for them (and for our answers to those, which go to the server's old address with
a spare connection ID tshark cannot place either); our first packet on the new path is always
checked on the decrypted wire.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from peers_harness import PeerHarness, Pki, WwwDir, in_namespace

from quicreality.scenarios.capture import start_capture, tshark_fields
from quicreality.scenarios.fingerprint_capture import LoopbackNamespace
from quicreality.scenarios.pathcheck import PATH_FIELDS, path_verdict, qlog_sent_challenges
from quicreality.scenarios.peers import DownloadRequest, ServeRequest, get_peer
from quicreality.scenarios.peers.base import Command, PeerSpec, free_udp_port, sha256_file, url_for

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

FIELDS = ["ip.src", "ip.dst", "udp.srcport", "udp.dstport", "quic.frame_type",
          "quic.path_challenge.data", "quic.path_response.data"]
PREFERRED_HOST = "127.0.0.2"


@pytest.fixture(autouse=True)
def _preconditions() -> None:
    assert os.geteuid() == 0, "capturing on lo needs root"
    assert shutil.which("tcpdump") and shutil.which("tshark"), "run scripts/setup.sh"


def with_server_args(spec: PeerSpec, *extra: str, after: str | None = None) -> PeerSpec:
    """``spec`` whose server gets ``extra`` options after the argument ``after`` (default: the
    program name)."""
    build = spec.serve
    assert build is not None

    def serve(req: ServeRequest) -> Command:
        cmd = build(req)
        i = cmd.argv.index(after) + 1 if after is not None else 1
        return dataclasses.replace(cmd, argv=(*cmd.argv[:i], *extra, *cmd.argv[i:]))

    return dataclasses.replace(spec, serve=serve)


def migrating_client(req: DownloadRequest) -> Command:
    """Our client with ``--migrate -v`` (``-v`` logs the migration)."""
    spec = get_peer("ours")
    assert spec.download is not None
    cmd = spec.download(req)
    argv = list(cmd.argv)
    i = argv.index("client")
    return dataclasses.replace(cmd, argv=(*argv[: i + 1], "--migrate", "-v", *argv[i + 1:]))


def qlog_frames(qlog_dir: Path, kind: str, event: str = "packet_received") -> set[str]:
    """The ``kind`` frames' data in our client's qlog ``event`` (packet_received/_sent) events."""
    out: set[str] = set()
    for path in qlog_dir.glob("*_client.sqlog"):
        for record in path.read_text().split("\x1e"):
            if f'"{kind}"' in record and event in record:
                frames = json.loads(record)["data"].get("frames", [])
                out.update(f["data"] for f in frames if f.get("frame_type") == kind)
    return out


def migration_verdict(rows: list[dict[str, str]], server: tuple[str, str],
                      new_server: tuple[str, str],
                      qlog_dir: Path) -> tuple[list[str], dict[str, Any]]:
    """What the capture says about our client's migration: (failures, facts)."""
    ours = [r for r in rows if (r["ip.dst"], r["udp.dstport"]) in (server, new_server)]
    theirs = [r for r in rows if (r["ip.src"], r["udp.srcport"]) in (server, new_server)]
    ports = []
    for r in ours:
        if r["udp.srcport"] not in ports:
            ports.append(r["udp.srcport"])
    failures: list[str] = []
    if len(ports) < 2:
        return [f"our client used only the local ports {ports}"], {"ports": ports}
    first_new = next(r for r in ours if r["udp.srcport"] == ports[1])
    # All our challenges: a lost one is replaced by a new one, which tshark may not decrypt.
    our_challenges = {d for r in ours if r["udp.srcport"] == ports[1]
                      for d in r["quic.path_challenge.data"].split(",") if d}
    our_challenges |= qlog_frames(qlog_dir, "path_challenge", "packet_sent")
    if not first_new["quic.path_challenge.data"]:
        failures.append("our first packet on the new path has no PATH_CHALLENGE")
    if (first_new["ip.dst"], first_new["udp.dstport"]) != new_server:
        failures.append(f"our new path goes to {first_new['ip.dst']}:{first_new['udp.dstport']}")
    opaque = sum(1 for r in theirs if not r["quic.frame_type"])
    their_responses = {d for r in theirs for d in r["quic.path_response.data"].split(",") if d}
    if opaque:
        their_responses |= qlog_frames(qlog_dir, "path_response")
    if not our_challenges & their_responses:
        failures.append("the server answered none of our PATH_CHALLENGEs")
    to_new = [r for r in theirs if r["udp.dstport"] == ports[1]]
    their_challenges = {d for r in to_new for d in r["quic.path_challenge.data"].split(",") if d}
    if opaque:
        their_challenges |= qlog_frames(qlog_dir, "path_challenge")
    our_responses = {d for r in ours for d in r["quic.path_response.data"].split(",") if d}
    if opaque:  # answers to the server's old address go with a spare CID tshark cannot place
        our_responses |= qlog_frames(qlog_dir, "path_response", "packet_sent")
    if their_challenges - our_responses:
        failures.append(f"we left server challenges unanswered: {their_challenges - our_responses}")
    facts = {"ports": ports, "our_challenges": len(our_challenges),
             "answered": len(our_challenges & their_responses),
             "server_challenges_on_new_path": len(their_challenges),
             "server_first_packet_on_new_path_has_challenge":
                 bool(to_new and to_new[0]["quic.path_challenge.data"]),
             "packets_to_new_path": len(to_new), "server_packets_undecryptable": opaque}
    return failures, facts


def migrate_against(h: PeerHarness, pki: Pki, www: WwwDir, server: PeerSpec, port: int,
                    new_server: tuple[str, int], ns: LoopbackNamespace) -> dict[str, Any]:
    h.serve(in_namespace(server, ns), ServeRequest(www=www.path, port=port, cert=pki.cert,
                                                   key=pki.key))
    cap = start_capture(ns.exec_prefix, "lo", str(h.path("lo.pcap")),
                        f"udp port {port} or udp port {new_server[1]}")
    url = url_for("127.0.0.1", port, "3M.bin")
    client = in_namespace(dataclasses.replace(get_peer("ours"), download=migrating_client), ns)
    req = DownloadRequest(urls=(url,), out_dir=h.path("out"), ca=pki.ca,
                          qlog_dir=h.path("qlog"), keylog=h.path("client.keys"))
    try:
        out = h.download(client, req, timeout=120)
    finally:
        cap.stop(settle_s=0.3)
    assert out.finished.returncode == 0, out.describe()
    assert "migrated:" in out.finished.stderr, out.describe()
    got = h.path("out", "3M.bin")
    assert sha256_file(got) == www.sha256["3M.bin"], "body differs"
    decode = [f"udp.port=={p},quic" for p in {port, new_server[1]}]
    rows = tshark_fields(str(h.path("lo.pcap")), FIELDS, "quic", decode_as=decode,
                         keylog=str(h.path("client.keys")))
    failures, facts = migration_verdict(rows, ("127.0.0.1", str(port)),
                                        (new_server[0], str(new_server[1])), h.path("qlog"))
    print(server.name, facts)
    assert not failures, f"{failures} {facts}"
    return facts


@pytest.fixture
def www3(www: WwwDir) -> WwwDir:
    if "3M.bin" not in www.sha256:
        www.add("3M.bin", os.urandom(3_000_000))
    return www


def test_our_client_migrates_to_ngtcp2_preferred_address(peer_harness: PeerHarness, pki: Pki,
                                                        www3: WwwDir, udp_port: int,
                                                        ns: LoopbackNamespace) -> None:
    pport = free_udp_port(PREFERRED_HOST)
    server = with_server_args(get_peer("ngtcp2"), f"--preferred-ipv4-addr={PREFERRED_HOST}:{pport}")
    facts = migrate_against(peer_harness, pki, www3, server, udp_port, (PREFERRED_HOST, pport), ns)
    assert facts["packets_to_new_path"] > 0


@pytest.mark.parametrize("server", ["ngtcp2", "aioquic", "qh3"])
def test_our_client_migrates_to_a_new_port(peer_harness: PeerHarness, pki: Pki, www3: WwwDir,
                                           udp_port: int, server: str,
                                           ns: LoopbackNamespace) -> None:
    facts = migrate_against(peer_harness, pki, www3, get_peer(server), udp_port,
                            ("127.0.0.1", udp_port), ns)
    assert facts["packets_to_new_path"] > 0


def test_our_client_respects_disable_active_migration(peer_harness: PeerHarness, pki: Pki,
                                                      www3: WwwDir, udp_port: int) -> None:
    """quic-go 0.29's server sends disable_active_migration: we stay on our path (RFC 9000
    §9, §18.2), say so, and the transfer completes."""
    h = peer_harness
    h.serve("quicgo", ServeRequest(www=www3.path, port=udp_port, cert=pki.cert, key=pki.key))
    client = dataclasses.replace(get_peer("ours"), download=migrating_client)
    url = url_for("127.0.0.1", udp_port, "3M.bin")
    out = h.download(client, DownloadRequest(urls=(url,), out_dir=h.path("out"), ca=pki.ca),
                     timeout=120)
    assert out.finished.returncode == 0, out.describe()
    assert "not migrating: the server sent disable_active_migration" in out.finished.stderr
    assert sha256_file(h.path("out", "3M.bin")) == www3.sha256["3M.bin"]


def test_ngtcp2_client_migrates_to_our_preferred_address(peer_harness: PeerHarness, pki: Pki,
                                                         www3: WwwDir, udp_port: int,
                                                         ns: LoopbackNamespace) -> None:
    h = peer_harness
    pport = free_udp_port(PREFERRED_HOST)
    server = with_server_args(get_peer("ours"), "--preferred-address", f"{PREFERRED_HOST}:{pport}",
                              after="server")
    keys, qlogs = h.path("server.keys"), h.path("qlog-server")
    h.serve(in_namespace(server, ns), ServeRequest(www=www3.path, port=udp_port, cert=pki.cert,
                                                   key=pki.key, keylog=keys, qlog_dir=qlogs))
    cap = start_capture(ns.exec_prefix, "lo", str(h.path("lo.pcap")),
                        f"udp port {udp_port} or udp port {pport}")
    url = url_for("127.0.0.1", udp_port, "3M.bin")
    try:
        out = h.download(in_namespace(get_peer("ngtcp2"), ns),
                         DownloadRequest(urls=(url,), out_dir=h.path("out"), ca=pki.ca),
                         timeout=120)
    finally:
        cap.stop(settle_s=0.3)
    assert out.finished.returncode == 0, out.describe()
    assert sha256_file(h.path("out", "3M.bin")) == www3.sha256["3M.bin"], "body differs"
    decode = [f"udp.port=={p},quic" for p in (udp_port, pport)]
    rows = tshark_fields(str(h.path("lo.pcap")), list(PATH_FIELDS), "quic", decode_as=decode,
                         keylog=str(keys))
    logged = qlog_sent_challenges(p.read_text() for p in qlogs.glob("*_server.sqlog"))
    verdict = path_verdict(rows, [("127.0.0.1", udp_port), (PREFERRED_HOST, pport)], logged_challenges=logged)
    print(verdict)
    assert verdict.ok, verdict
    assert any(p[0] == PREFERRED_HOST for p in verdict.paths), "nothing sent from the preferred address"
