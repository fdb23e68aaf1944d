"""The accepted REALITY flight looks like the target's: ngtcp2 (and quic-go) answering a
Chrome-shaped hello directly, against our listener answering an accepted REALITY chrome client.
Both captured in a fresh namespace whose lo segments UDP GSO in software
(:class:`~quicreality.scenarios.fingerprint_capture.LoopbackNamespace`), read with the fingerprint
tool (tshark) and with our own observer-side parser."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from peers_harness import PeerHarness, Pki, WwwDir

from quicreality.analysis.fingerprint import fingerprint_pcap
from quicreality.scenarios.fingerprint_capture import LoopbackNamespace, capture_udp_port
from quicreality.scenarios.peers import ServeRequest, get_peer
from quicreality.scenarios.peers import paths as peer_paths
from quicreality.scenarios.peers.base import Command
from quicreality.scenarios.peers.process import PeerProcess

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]

REALITY, TARGET = 4445, 4446
#: What an on-path observer reads of the server's answer (no keys needed).
OBSERVABLE = ("server.flight.datagrams", "server.flight.sizes", "server.flight.coalescing",
              "server.tls.cipher_suite", "server.tls.extensions", "server.tls.key_share_group",
              "server.tls.key_share_size", "server.tls.hello_retry_request",
              "server.quic.scid_len")
RUNS = 3
#: quic-go's own answer varies with its timing (its 0.5-RTT data coalesced into the handshake
#: datagram or sent alone): more direct handshakes are captured, RUNS at a time, until each of our
#: answers is one of the target's, or this many rounds are done.
DIRECT_ROUNDS = 3
#: Every observable feature must be equal, sizes included: the padded datagrams are cut to the
#: target's sizes, the ACK-only Initial follows the copied SCID length and the shortest packet
#: numbers, and quic-go's 24-byte 0.5-RTT datagram (its control stream with an empty SETTINGS, no
#: QPACK stream) is matched since the accepted connection opens its HTTP/3 as the learned target
#: did (``quicreality/h3/profile.py``). aioquic's small sizes are still floors.
EXACT = {"ngtcp2": True, "quicgo": True, "aioquic": False}

def _python(*args: str) -> list[str]:
    return [str(peer_paths.python()), "-m", *args]


def _start(h: PeerHarness, ns: LoopbackNamespace, argv: list[str] | tuple[str, ...], port: int,
           name: str, env: dict[str, str] | None = None) -> PeerProcess:
    proc = h.start(PeerProcess(Command(argv=ns.wrap(argv), env=env or {},
                                       cwd=peer_paths.REPO_ROOT), name=name,
                               log_dir=h.path("logs")))
    proc.wait_udp_ready(port, timeout=30)
    return proc


def _client(h: PeerHarness, ns: LoopbackNamespace, port: int, name: str, *opts: str) -> None:
    argv = _python("quicreality", "client", f"https://127.0.0.1:{port}/index.html", "-o",
                   str(h.path(f"out-{name}")), "--json", "--fingerprint", "chrome", *opts)
    fin = h.start(PeerProcess(Command(argv=ns.wrap(argv), cwd=peer_paths.REPO_ROOT), name=name,
                              log_dir=h.path("logs"))).wait(120)
    assert fin.returncode == 0, f"{name}: rc={fin.returncode}\n{fin.stderr[-3000:]}"
    assert json.loads(fin.stdout.strip().splitlines()[-1])["error"] is None, fin.stdout


def _observed(pcap: object) -> list[dict[str, object]]:
    fps = fingerprint_pcap(pcap)  # no key log: what anyone on the path sees
    return [{k: fp.features.get(k) for k in OBSERVABLE} for fp in fps]


@pytest.mark.parametrize("target", ["ngtcp2", "quicgo", "aioquic"])
def test_accepted_flight_matches_the_target(peer_harness: PeerHarness, pki: Pki, www: WwwDir,
                                            target: str) -> None:
    h = peer_harness
    keys = json.loads(subprocess.run(_python("quicreality", "keygen", "--json"),
                                     capture_output=True, text=True, check=True,
                                     cwd=peer_paths.REPO_ROOT).stdout)
    accepted = h.path("accepted.pcap")
    with LoopbackNamespace() as ns:
        serve = get_peer(target).serve
        assert serve is not None
        tcmd = serve(ServeRequest(www=www.path, port=TARGET, cert=pki.cert, key=pki.key))
        _start(h, ns, tcmd.argv, TARGET, "target", env=dict(tcmd.env))
        conf = h.path("reality.toml")
        conf.write_text("\n".join([
            "[reality]", f'private_key = "{keys["private_key"]}"', 'server_names = ["localhost"]',
            f'short_ids = ["{keys["short_id"]}"]', f'target = "127.0.0.1:{TARGET}"',
            "max_time_diff_ms = 30000", "shape_ttl_s = 600", ""]))
        listener = _start(h, ns, _python("quicreality", "server", "--listen",
                                         f"127.0.0.1:{REALITY}", "--reality-config", str(conf),
                                         "--www", str(www.path)), REALITY, "reality-listener")
        deadline = time.monotonic() + 30
        while "target shape for localhost" not in listener.stderr():
            assert time.monotonic() < deadline, listener.describe()
            time.sleep(0.1)
        theirs = _direct_round(h, ns, 0)
        cap2 = capture_udp_port(ns, REALITY, accepted)
        try:
            for i in range(RUNS):
                _client(h, ns, REALITY, f"reality-{i}", f"--reality-public-key={keys['public_key']}",
                        "--short-id", keys["short_id"], "--server-name", "localhost")
        finally:
            cap2.stop(settle_s=0.5)
        assert cap2.dropped == 0
        ours = _observed(accepted)
        assert len(ours) == RUNS
        for r in range(1, DIRECT_ROUNDS):
            if all(any(_matches(o, t, exact=EXACT[target]) for t in theirs) for o in ours):
                break
            time.sleep(1.0)  # the mirrored hellos' flows with the target are over
            theirs += _direct_round(h, ns, r)
        log = listener.stderr()
    assert log.count("reality verdict ACCEPT") == RUNS, log
    print(next(line for line in log.splitlines() if "target shape for" in line))
    print(f"{target} answering a Chrome-shaped hello: {theirs}\nour accepted flight: {ours}")
    # each of our answers must be one of the target's
    for o in ours:
        assert any(_matches(o, t, exact=EXACT[target]) for t in theirs), (o, theirs)

def _direct_round(h: PeerHarness, ns: LoopbackNamespace, r: int) -> list[dict[str, object]]:
    """RUNS chrome clients straight to the target, captured and read as an observer would."""
    pcap = h.path(f"direct-{r}.pcap")
    cap = capture_udp_port(ns, TARGET, pcap)
    try:
        for i in range(RUNS):
            _client(h, ns, TARGET, f"direct-{r}-{i}", "--insecure", "--server-name", "localhost")
    finally:
        cap.stop(settle_s=0.5)
    assert cap.dropped == 0
    got = _observed(pcap)
    assert len(got) == RUNS, got
    return got


def _matches(ours: dict[str, object], theirs: dict[str, object], *, exact: bool) -> bool:
    if exact:
        return ours == theirs
    sizes = "server.flight.sizes"
    if {k: v for k, v in ours.items() if k != sizes} != \
            {k: v for k, v in theirs.items() if k != sizes}:
        return False
    return all(x == t if t >= 1200 else x >= t
               for t, x in zip(theirs[sizes], ours[sizes], strict=True))  # type: ignore[call-overload]
