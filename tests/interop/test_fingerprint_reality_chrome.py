"""Our REALITY client with the default Chrome fingerprint, captured through the listener to an
accepted connection, against the measured Chromium 156 profile; and real Chromium negotiating
X25519MLKEM768 with our server. Everything runs in a fresh namespace whose lo segments UDP GSO in
software (:class:`~quicreality.scenarios.fingerprint_capture.LoopbackNamespace`)."""

from __future__ import annotations

import json
import subprocess

import pytest
from peers_harness import PeerHarness, Pki, WwwDir

from quicreality.analysis.fingerprint import fingerprint_pcap, load_profile
from quicreality.analysis.fingerprint_compare import compare, profile
from quicreality.scenarios.fingerprint_capture import LoopbackNamespace, capture_udp_port
from quicreality.scenarios.peers import ServeRequest, chromium, get_peer
from quicreality.scenarios.peers import paths as peer_paths
from quicreality.scenarios.peers.base import Command
from quicreality.scenarios.peers.paths import PeerNotInstalled
from quicreality.scenarios.peers.process import PeerProcess

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]

PROFILE = peer_paths.REPO_ROOT / "docs" / "data" / "chrome156-hello.json"
OURS, REALITY, TARGET = 4433, 4435, 4436
#: With the chrome fingerprint (hello and Initial layout, quic/initial_layout.py) nothing differs
#: from Chromium but what a carrier adds: Xray's session_id is 32 bytes Chrome's QUIC hello lacks.
CARRIER_DIFFERENCES = {
    "ech": set(),
    "session_id": {"client.tls.session_id_len", "client.tls.handshake_len_stable"},
}


def _python(*args: str) -> list[str]:
    return [str(peer_paths.python()), "-m", *args]


def _start(h: PeerHarness, ns: LoopbackNamespace, argv: list[str] | tuple[str, ...], port: int,
           name: str, env: dict[str, str] | None = None) -> PeerProcess:
    proc = h.start(PeerProcess(Command(argv=ns.wrap(argv), env=env or {},
                                       cwd=peer_paths.REPO_ROOT), name=name,
                               log_dir=h.path("logs")))
    proc.wait_udp_ready(port, timeout=30)
    return proc


def _run(h: PeerHarness, ns: LoopbackNamespace, argv: list[str], name: str) -> str:
    fin = h.start(PeerProcess(Command(argv=ns.wrap(argv), cwd=peer_paths.REPO_ROOT), name=name,
                              log_dir=h.path("logs"))).wait(120)
    assert fin.returncode == 0, f"{name}: rc={fin.returncode}\n{fin.stderr[-3000:]}"
    return fin.stdout


def _reality_listener(h: PeerHarness, ns: LoopbackNamespace, pki: Pki, www: WwwDir
                      ) -> list[str]:
    """ngtcp2 as the target and our listener in front of it; the client's REALITY options."""
    keys = json.loads(subprocess.run(_python("quicreality", "keygen", "--json"),
                                     capture_output=True, text=True, check=True,
                                     cwd=peer_paths.REPO_ROOT).stdout)
    serve = get_peer("ngtcp2").serve
    assert serve is not None
    tcmd = serve(ServeRequest(www=www.path, port=TARGET, cert=pki.cert, key=pki.key))
    _start(h, ns, tcmd.argv, TARGET, "target", env=dict(tcmd.env))
    conf = h.path("reality.toml")
    conf.write_text("\n".join([
        "[reality]", f'private_key = "{keys["private_key"]}"', 'server_names = ["localhost"]',
        f'short_ids = ["{keys["short_id"]}"]', f'target = "127.0.0.1:{TARGET}"',
        "max_time_diff_ms = 30000",
        # our own accepted flight (the hybrid share below); the target-shaped one is checked by
        # test_reality_server_shape.py
        "shape_ttl_s = 0", ""]))
    _start(h, ns, _python("quicreality", "server", "--listen", f"127.0.0.1:{REALITY}",
                          "--reality-config", str(conf), "--www", str(www.path)),
           REALITY, "reality-listener")
    return [f"--reality-public-key={keys['public_key']}", "--short-id", keys["short_id"],
            "--server-name", "localhost"]


@pytest.mark.parametrize("carrier", ["ech", "session_id"])
def test_chrome_reality_client_differs_from_chromium_only_by_its_carrier(
        peer_harness: PeerHarness, pki: Pki, www: WwwDir, carrier: str) -> None:
    h = peer_harness
    pcap, keys = h.path("reality.pcap"), h.path("reality.keys")
    with LoopbackNamespace() as ns:
        opts = _reality_listener(h, ns, pki, www)
        cap = capture_udp_port(ns, REALITY, pcap)
        try:
            for i in range(3):
                out = _run(h, ns, _python("quicreality", "client",
                                          f"https://127.0.0.1:{REALITY}/index.html", "-o",
                                          str(h.path(f"out-{i}")), "--json", "--keylog",
                                          str(keys), "--carrier", carrier, *opts), f"client-{i}")
                assert json.loads(out.strip().splitlines()[-1])["error"] is None
        finally:
            cap.stop(settle_s=0.5)
    assert cap.dropped == 0
    fps = fingerprint_pcap(pcap, keylog=keys)
    assert len(fps) == 3
    for fp in fps:  # accepted by our listener: our certificate, the hybrid key exchange
        assert fp.features["server.tls.key_share_group"] == "0x11ec"
        assert fp.features["server.tls.certificate_len"] < 300
    ours = profile((fp.features for fp in fps), label=f"ours, chrome, {carrier}")
    diffs = {d.feature: d for d in compare(load_profile(str(PROFILE)), ours,
                                           prefixes=("client.",))}
    expected = CARRIER_DIFFERENCES[carrier]
    print(f"{carrier}: differs from Chromium in {sorted(diffs)}")
    assert set(diffs) == expected, {k: d.to_json() for k, d in diffs.items()}


def test_chromium_negotiates_x25519mlkem768_with_our_server(
        peer_harness: PeerHarness, pki: Pki, www: WwwDir) -> None:
    try:
        chromium.binary()
        chromium.certutil()
    except PeerNotInstalled as exc:
        pytest.fail(f"{exc}: run scripts/setup.sh (Debian packages chromium and libnss3-tools)")
    h = peer_harness
    pcap, keys = h.path("chromium.pcap"), h.path("chromium.keys")
    with LoopbackNamespace() as ns:
        _start(h, ns, _python("quicreality", "server", "--listen", f"127.0.0.1:{OURS}", "--cert",
                              str(pki.cert), "--key", str(pki.key), "--www", str(www.path)),
               OURS, "ours-server")
        cap = capture_udp_port(ns, OURS, pcap)
        try:
            line = _run(h, ns, _python("quicreality.scenarios.peers.chromium",
                                       f"https://localhost:{OURS}/index.html", "--out",
                                       str(h.path("dom")), "--pin", str(pki.cert), "--keylog",
                                       str(keys)), "chromium")
        finally:
            cap.stop(settle_s=0.5)
    result = json.loads(line.strip().splitlines()[-1])
    assert result["error"] is None and result["proto"] == "h3", result
    (fp,) = fingerprint_pcap(pcap, keylog=keys)
    assert fp.features["client.tls.key_share_groups"] == ["0x11ec", "0x001d"]
    assert fp.features["server.tls.key_share_group"] == "0x11ec"
    assert fp.features["server.tls.key_share_size"] == 1120
    assert fp.features["server.tls.decrypted"]  # Chromium's key log opens our Handshake flight
