"""QUIC v2 (RFC 9369) and version negotiation against real peers over loopback sockets, checked
on the wire as quic-interop-runner's ``v2`` case does: the capture's long headers are parsed and
the client's first Initial must be v1, the server's Initials v2 and every Handshake packet v2.

Peers that speak RFC 9369 v2 here: aioquic 1.7.2 and qh3 2.1.0 (both roles; as servers they pick
the first version of the client's Available Versions they support, so they move our client from
v1 to v2 when it lists v2 first, ``--initial-version v1``). ngtcp2 0.12 and
quic-go 0.29 only know the v2 *draft* (0x709a50c4), which is not RFC 9369.
"""

from __future__ import annotations

import dataclasses
import subprocess

import pytest
from peers_harness import DownloadOutcome, PeerHarness, Pki, WwwDir

from quicreality.quic.packet import (
    PACKET_TYPE_HANDSHAKE,
    PACKET_TYPE_INITIAL,
    PACKET_TYPE_RETRY,
    PACKET_TYPE_UNKNOWN_VERSION,
    PACKET_TYPE_VERSION_NEGOTIATION,
    QUIC_VERSION_1,
    QUIC_VERSION_2,
    MalformedPacketError,
    pull_quic_header,
)
from quicreality.scenarios.capture import Capture, start_capture
from quicreality.scenarios.peers import DownloadRequest, ServeRequest, get_peer
from quicreality.scenarios.peers.base import free_udp_port, sha256_file, url_for
from quicreality.scenarios.peers.process import PeerProcess
from quicreality.wire.buffer import Buffer

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

V1, V2 = QUIC_VERSION_1, QUIC_VERSION_2
FILE = "index.html"


def serve(h: PeerHarness, peer: str, pki: Pki, www: WwwDir, port: int,
          versions: str | None, retry: bool = False) -> None:
    spec = get_peer(peer)
    assert spec.serve is not None
    cmd = spec.serve(ServeRequest(www=www.path, port=port, cert=pki.cert, key=pki.key,
                                  retry=retry))
    if versions is not None:  # None: the peer's own defaults (ngtcp2, quic-go: v1)
        cmd = dataclasses.replace(cmd, argv=(*cmd.argv, "--versions", versions))
    proc = h.start(PeerProcess(cmd, name=f"{peer}-server-{port}", log_dir=h.path("logs")))
    proc.wait_udp_ready(port, timeout=15)


def download(h: PeerHarness, peer: str, url: str, pki: Pki, versions: str,
             initial: str | None = None) -> DownloadOutcome:
    spec = get_peer(peer)
    assert spec.download is not None and spec.parse is not None
    req = DownloadRequest(urls=(url,), out_dir=h.path(f"out-{peer}"), ca=pki.ca, timeout=30)
    cmd = spec.download(req)
    if peer == "ngtcp2":  # gtlsclient: --version first, --preferred-versions after a VN
        first, _, rest = versions.partition(",")
        argv = (cmd.argv[0], f"--version={first}", f"--preferred-versions={rest or first}",
                *cmd.argv[1:])
    else:
        argv = (*cmd.argv, "--versions", versions)
    if initial is not None:  # ours: the first Initial's version, if not the first preferred
        argv = (*argv, "--initial-version", initial)
    cmd = dataclasses.replace(cmd, argv=argv)
    proc = h.start(PeerProcess(cmd, name=f"{peer}-client", log_dir=h.path("logs")))
    finished = proc.wait(60)
    return DownloadOutcome(finished, spec.parse(finished.stdout, finished.stderr, req), req)


def wire(pcap: str, server_port: int) -> dict[str, list[tuple[int, int]]]:
    """(version, packet type) of every long-header packet, by sender ("client"/"server")."""
    out = subprocess.run(["tshark", "-r", pcap, "-T", "fields", "-e", "udp.srcport",
                          "-e", "udp.payload"], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    packets: dict[str, list[tuple[int, int]]] = {"client": [], "server": []}
    for line in out.splitlines():
        port, _, payload = line.partition("\t")
        if not payload:
            continue
        buf = Buffer(data=bytes.fromhex(payload.replace(":", "")))
        while not buf.eof():
            try:
                header = pull_quic_header(buf, host_cid_length=None)
            except MalformedPacketError:
                break  # a short header: the rest of the datagram is 1-RTT
            assert header.version is not None
            side = "server" if int(port) == server_port else "client"
            packets[side].append((header.version, header.packet_type))
            buf.seek(header.packet_end)
    return packets


def versions_of(packets: list[tuple[int, int]], ptype: int) -> set[int]:
    return {v for v, t in packets if t == ptype}


def run_case(h: PeerHarness, pki: Pki, www: WwwDir, *, server: str, client: str,
             server_versions: str | None, client_versions: str,
             retry: bool = False, initial: str | None = None) -> tuple[DownloadOutcome, dict]:
    port = free_udp_port()
    pcap = str(h.path(f"v2-{server}-{client}.pcap"))
    capture: Capture = start_capture([], "lo", pcap, f"udp port {port}")
    try:
        serve(h, server, pki, www, port, server_versions, retry)
        out = download(h, client, url_for("127.0.0.1", port, FILE), pki, client_versions,
                       initial)
    finally:
        capture.stop(settle_s=0.5)
    return out, wire(pcap, port)


def assert_body(out: DownloadOutcome, www: WwwDir) -> None:
    (result,) = out.results
    assert result.ok and result.file is not None, out.describe()
    assert sha256_file(result.file) == www.sha256[FILE]


@pytest.mark.parametrize("client", ["aioquic", "qh3"])
def test_our_server_moves_a_v1_client_to_v2(peer_harness: PeerHarness, pki: Pki, www: WwwDir,
                                            client: str) -> None:
    """QIR ``v2``: client starts in v1 offering v2; our server (v2,v1) selects v2 compatibly."""
    out, packets = run_case(peer_harness, pki, www, server="ours", client=client,
                            server_versions="v2,v1", client_versions="v1,v2")
    assert_body(out, www)
    assert packets["client"][0] == (V1, PACKET_TYPE_INITIAL), packets["client"][:3]
    assert versions_of(packets["server"], PACKET_TYPE_INITIAL) == {V2}
    assert versions_of(packets["client"], PACKET_TYPE_HANDSHAKE) == {V2}
    assert versions_of(packets["server"], PACKET_TYPE_HANDSHAKE) == {V2}


@pytest.mark.parametrize("server", ["aioquic", "qh3"])
def test_our_client_speaks_v2_to(peer_harness: PeerHarness, pki: Pki, www: WwwDir,
                                 server: str) -> None:
    out, packets = run_case(peer_harness, pki, www, server=server, client="ours",
                            server_versions="v2,v1", client_versions="v2,v1")
    assert_body(out, www)
    every = {v for side in packets.values() for v, _ in side}
    assert every == {V2}, packets
    assert versions_of(packets["client"], PACKET_TYPE_HANDSHAKE) == {V2}


@pytest.mark.parametrize("server", ["aioquic", "qh3"])
def test_our_client_starting_in_v1_is_moved_to_v2_by(peer_harness: PeerHarness, pki: Pki,
                                                      www: WwwDir, server: str) -> None:
    """QIR ``v2`` with our client: it starts in v1 and lists v2 first in Available Versions (its
    preference, RFC 9368 §3); aioquic and qh3 pick by the client's order and move it to v2."""
    out, packets = run_case(peer_harness, pki, www, server=server, client="ours",
                            server_versions="v2,v1", client_versions="v2,v1", initial="v1")
    assert_body(out, www)
    assert packets["client"][0] == (V1, PACKET_TYPE_INITIAL), packets["client"][:3]
    assert versions_of(packets["server"], PACKET_TYPE_INITIAL) == {V2}
    assert versions_of(packets["client"], PACKET_TYPE_HANDSHAKE) == {V2}
    assert versions_of(packets["server"], PACKET_TYPE_HANDSHAKE) == {V2}


def test_our_client_follows_a_peer_version_negotiation(peer_harness: PeerHarness, pki: Pki,
                                                       www: WwwDir) -> None:
    """RFC 9000 §6 / RFC 9368 §2.1: aioquic (v1 only) answers our v2 Initial with Version
    Negotiation; our client starts again in v1 and downloads."""
    out, packets = run_case(peer_harness, pki, www, server="aioquic", client="ours",
                            server_versions="v1", client_versions="v2,v1")
    assert_body(out, www)
    assert packets["client"][0] == (V2, PACKET_TYPE_INITIAL)
    assert packets["server"][0][1] == PACKET_TYPE_VERSION_NEGOTIATION
    assert versions_of(packets["server"], PACKET_TYPE_HANDSHAKE) == {V1}


def test_no_common_version_fails_with_a_clear_error(peer_harness: PeerHarness, pki: Pki,
                                                    www: WwwDir) -> None:
    out, packets = run_case(peer_harness, pki, www, server="aioquic", client="ours",
                            server_versions="v1", client_versions="v2")
    assert out.finished.returncode == 1
    assert "Version negotiation failed: the server speaks v1, we speak v2" in \
        out.finished.stdout, out.describe()
    assert [t for _, t in packets["server"]] == [PACKET_TYPE_VERSION_NEGOTIATION]


def test_our_server_answers_an_unsupported_version_with_vn(peer_harness: PeerHarness, pki: Pki,
                                                           www: WwwDir) -> None:
    """aioquic starting in v2 against our v1-only server gets our Version Negotiation, starts
    again in v1 and downloads."""
    out, packets = run_case(peer_harness, pki, www, server="ours", client="aioquic",
                            server_versions="v1", client_versions="v2,v1")
    assert_body(out, www)
    assert packets["client"][0] == (V2, PACKET_TYPE_INITIAL)
    assert packets["server"][0][1] == PACKET_TYPE_VERSION_NEGOTIATION
    assert versions_of(packets["server"], PACKET_TYPE_HANDSHAKE) == {V1}


@pytest.mark.parametrize("server", ["ngtcp2", "quicgo", "aioquic", "qh3"])
def test_our_client_provokes_version_negotiation(peer_harness: PeerHarness, pki: Pki,
                                                 www: WwwDir, server: str) -> None:
    """quic-interop-runner's versionnegotiation with our client: its first Initial is in a
    reserved version (RFC 9000 §15, v1's format); the peer answers with VN listing v1 and the
    client starts again in v1."""
    reserved = 0x1A2A3A4A
    out, packets = run_case(peer_harness, pki, www, server=server, client="ours",
                            server_versions=None, client_versions="0x1a2a3a4a,v1")
    assert_body(out, www)
    assert packets["client"][0] == (reserved, PACKET_TYPE_UNKNOWN_VERSION)  # opaque to observers
    assert packets["server"][0][1] == PACKET_TYPE_VERSION_NEGOTIATION
    assert versions_of(packets["client"], PACKET_TYPE_HANDSHAKE) == {V1}


def test_retry_then_compatible_negotiation(peer_harness: PeerHarness, pki: Pki,
                                           www: WwwDir) -> None:
    """Our server with Retry moves aioquic (v1,v2) to v2: Retry in v1, then v2 Initial keys
    from the Retry's connection ID (RFC 9368 §2.3 with RFC 9000 §17.2.5)."""
    out, packets = run_case(peer_harness, pki, www, server="ours", client="aioquic",
                            server_versions="v2,v1", client_versions="v1,v2", retry=True)
    assert_body(out, www)
    assert (V1, PACKET_TYPE_RETRY) in packets["server"]
    assert versions_of(packets["server"], PACKET_TYPE_INITIAL) == {V2}
    assert versions_of(packets["client"], PACKET_TYPE_HANDSHAKE) == {V2}


def test_our_client_follows_a_v2_retry(peer_harness: PeerHarness, pki: Pki, www: WwwDir) -> None:
    out, packets = run_case(peer_harness, pki, www, server="aioquic", client="ours",
                            server_versions="v2,v1", client_versions="v2", retry=True)
    assert_body(out, www)
    assert (V2, PACKET_TYPE_RETRY) in packets["server"]
    assert {v for side in packets.values() for v, _ in side} == {V2}


def test_our_server_answers_a_reserved_version_with_vn(peer_harness: PeerHarness, pki: Pki,
                                                       www: WwwDir) -> None:
    """quic-interop-runner's versionnegotiation with our server: gtlsclient starts in a reserved
    version, our server (default v1,v2) answers with VN listing v1 and v2, ngtcp2 starts again
    in v1 (it lists v1 only after VN)."""
    out, packets = run_case(peer_harness, pki, www, server="ours", client="ngtcp2",
                            server_versions="v1,v2", client_versions="0x1a2a3a4a,v1")
    assert_body(out, www)
    assert packets["client"][0] == (0x1A2A3A4A, PACKET_TYPE_UNKNOWN_VERSION)
    assert packets["server"][0] == (0, PACKET_TYPE_VERSION_NEGOTIATION)
    assert versions_of(packets["server"], PACKET_TYPE_HANDSHAKE) == {V1}
