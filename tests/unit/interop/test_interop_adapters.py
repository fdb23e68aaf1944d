"""QIR's endpoint contract -> argv per peer; 127 only where the real program has no option."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from quicreality.interop.adapters import CLIENTS, SERVERS, Endpoint, plan
from quicreality.scenarios.peers.base import Unsupported

REPO = Path(__file__).resolve().parents[3]
URLS = ("https://10.99.2.2:443/a", "https://10.99.2.2:443/b", "https://10.99.2.2:443/c")
NONE: frozenset[str] = frozenset()
ALL = frozenset({"client:--session-ticket", "client:--0rtt", "client:--key-update", "client:--ecn",
                 "client:--versions", "client:--initial-version", "client:--migrate", "server:--ecn",
                 "server:--versions",
                 "server:--preferred-address"})


def ep(peer: str, role: str, tc: str, **kw: object) -> Endpoint:
    return Endpoint(peer=peer, role=role, testcase=tc, requests=URLS, scratch=Path("/s"),
                    keylog=Path("/k/c.keys"), qlog_dir=Path("/q"), preferred="10.99.2.2:4443",
                    **kw)  # type: ignore[arg-type]


def test_from_env_reads_the_contract() -> None:
    e = Endpoint.from_env("ours", {"ROLE": "client", "TESTCASE": "transfer",
                                   "REQUESTS": " ".join(URLS), "SSLKEYLOGFILE": "/k",
                                   "QLOGDIR": "/q", "DOWNLOADS": "/d"})
    assert e.requests == URLS and e.keylog == Path("/k") and e.downloads == Path("/d")
    with pytest.raises(ValueError, match="ROLE"):
        Endpoint.from_env("ours", {"ROLE": "x", "TESTCASE": "transfer"})
    with pytest.raises(ValueError, match="TESTCASE"):
        Endpoint.from_env("ours", {"ROLE": "client"})


def test_ours_plain_and_multiconnect() -> None:
    (cmd,) = plan(ep("ours", "client", "transfer"), NONE)
    assert all(u in cmd.argv for u in URLS) and "--ca" in cmd.argv and "--keylog" in cmd.argv
    cmds = plan(ep("ours", "client", "multiconnect"), NONE)
    assert len(cmds) == 3 and [c.argv.count(URLS[i]) for i, c in enumerate(cmds)] == [1, 1, 1]
    (srv,) = plan(ep("ours", "server", "retry"), NONE)
    assert "--retry" in srv.argv and "0.0.0.0:443" in srv.argv


def test_ours_features_follow_the_cli_flags() -> None:
    for tc in ("resumption", "zerortt", "keyupdate", "ecn", "v2", "connectionmigration"):
        with pytest.raises(Unsupported, match=r"no (client|server):--"):
            plan(ep("ours", "client" if tc != "ecn" else "server", tc), NONE)
    first, second = plan(ep("ours", "client", "zerortt"), ALL)
    assert URLS[0] in first.argv and URLS[1] not in first.argv and "--0rtt" not in first.argv
    assert "--0rtt" in second.argv and "--session-ticket" in second.argv
    assert "--key-update" in plan(ep("ours", "client", "keyupdate"), ALL)[0].argv
    assert "v2,v1" in plan(ep("ours", "server", "v2"), ALL)[0].argv
    assert "10.99.2.2:4443" in plan(ep("ours", "server", "connectionmigration"), ALL)[0].argv


def test_ours_v2_client_starts_in_v1_and_prefers_v2() -> None:
    (cmd,) = plan(ep("ours", "client", "v2"), ALL)
    i = cmd.argv.index("--versions")
    assert cmd.argv[i:i + 4] == ("--versions", "v2,v1", "--initial-version", "v1")
    with pytest.raises(Unsupported, match="client:--initial-version"):
        plan(ep("ours", "client", "v2"), ALL - {"client:--initial-version"})


def test_ours_multiconnect_in_one_process_when_the_cli_has_connection_per_url() -> None:
    (one,) = plan(ep("ours", "client", "multiconnect"), ALL | {"client:--connection-per-url"})
    assert "--connection-per-url" in one.argv and all(u in one.argv for u in URLS)
    several = plan(ep("ours", "client", "multiconnect"), ALL)  # an older CLI: one per URL
    assert len(several) == len(URLS)
    assert all("--connection-per-url" not in c.argv for c in several)


def test_ngtcp2_uses_its_real_options() -> None:
    a, b = plan(ep("ngtcp2", "client", "resumption"))
    assert any(x.startswith("--session-file=") for x in a.argv) and "--disable-early-data" in b.argv
    assert b.argv[-len(URLS) + 1:] == URLS[1:]  # ... HOST PORT URL...
    (ku,) = plan(ep("ngtcp2", "client", "keyupdate"))
    assert "--key-update=1ms" in ku.argv and ku.argv[-3:] == URLS
    (vn,) = plan(ep("ngtcp2", "client", "versionnegotiation"))
    assert "--version=0x1a2a3a4a" in vn.argv
    with pytest.raises(Unsupported, match="v2 draft"):
        plan(ep("ngtcp2", "server", "v2"))
    (s,) = plan(ep("ngtcp2", "server", "connectionmigration"))
    assert "--preferred-ipv4-addr=10.99.2.2:4443" in s.argv


def test_aioquic_scripts_tickets_0rtt_key_update() -> None:
    for peer in ("aioquic", "qh3"):
        first, second = plan(ep(peer, "client", "zerortt"))
        assert first.argv[-1] == URLS[0] and "--0rtt" not in first.argv
        assert second.argv[-2:] == URLS[1:] and "--0rtt" in second.argv
        assert "--session-ticket" in first.argv and "--session-ticket" in second.argv
        (ku,) = plan(ep(peer, "client", "keyupdate"))
        assert ku.argv[-3:] == URLS and "--key-update" in ku.argv
        (srv,) = plan(ep(peer, "server", "resumption"))
        assert "--tickets" in srv.argv


def test_aioquic_scripts_versions_for_v2_and_version_negotiation() -> None:
    for peer in ("aioquic", "qh3"):
        (v2,) = plan(ep(peer, "client", "v2"))
        assert v2.argv[-3:] == URLS and v2.argv[-5:-3] == ("--versions", "v1,v2")
        (vn,) = plan(ep(peer, "client", "versionnegotiation"))
        assert vn.argv[-5:-3] == ("--versions", "0x1a2a3a4a,v1")
        (srv,) = plan(ep(peer, "server", "v2"))
        assert srv.argv[-2:] == ("--versions", "v2,v1")
    assert "--versions" not in plan(ep("aioquic", "server", "versionnegotiation"))[0].argv


def test_chromium_client_fetches_through_devtools_and_declines_the_rest() -> None:
    (cmd,) = plan(ep("chromium", "client", "transfer"))
    assert "quicreality.scenarios.peers.chromium_fetch" in cmd.argv and cmd.argv[-3:] == URLS
    assert cmd.argv[cmd.argv.index("--ca") + 1] == "/certs/ca.pem"
    assert "--keylog" in cmd.argv and "/q/chromium-netlog.json" in cmd.argv
    assert len(plan(ep("chromium", "client", "multiconnect"))) == 3
    assert plan(ep("chromium", "client", "retry"))[0].argv[-3:] == URLS
    for tc in ("chacha20", "ecn", "v2", "versionnegotiation", "connectionmigration"):
        with pytest.raises(Unsupported, match=f"TESTCASE={tc}"):
            plan(ep("chromium", "client", tc))
    with pytest.raises(Unsupported, match="no server role"):
        plan(ep("chromium", "server", "handshake"))


def test_chromium_resumption_and_zerortt_close_the_first_connection_in_one_browser() -> None:
    # one browser: the ticket cache lives in it; the first URL, then a new connection
    (z,) = plan(ep("chromium", "client", "zerortt"))
    assert z.argv[-5:] == ("--new-connection-after", "1", *URLS), z.argv
    (r,) = plan(ep("chromium", "client", "resumption"))  # no 0-RTT: a resumption alone
    assert r.argv[-6:] == ("--new-connection-after", "1", "--no-0rtt", *URLS), r.argv
    (k,) = plan(ep("chromium", "client", "keyupdate"))
    assert k.argv[-5:] == ("--key-update-after", "100", *URLS), k.argv
    with pytest.raises(ValueError, match="at least 2 REQUESTS"):
        plan(Endpoint(peer="chromium", role="client", testcase="zerortt", requests=URLS[:1]))


def test_chromium_batches_and_the_benchmarking_switch() -> None:
    from quicreality.scenarios.peers.chromium_fetch import (
        CLOSE_CONNECTIONS_JS,
        batches,
        browser_argv,
    )

    assert batches(URLS) == [list(URLS)] == batches(URLS, 3) == batches(URLS, 9)
    assert batches(URLS, 1) == [[URLS[0]], list(URLS[1:])]
    with pytest.raises(ValueError):
        batches(URLS, -1)
    assert "chrome.benchmarking.closeConnections()" in CLOSE_CONNECTIONS_JS
    assert "--enable-net-benchmarking" not in browser_argv(URLS, profile=Path("/p"))
    argv = browser_argv(URLS, profile=Path("/p"), benchmarking=True)
    assert "--enable-net-benchmarking" in argv and argv[-1] == "about:blank"


def test_chromium_browser_argv_forces_quic_and_resolves_nothing() -> None:
    from quicreality.scenarios.peers.chromium_fetch import browser_argv

    argv = browser_argv(["https://[fd00::2]:443/a", "https://[fd00::2]:443/b"],
                        profile=Path("/p"))
    assert "--origin-to-force-quic-on=*" in argv
    assert "--host-resolver-rules=MAP *.* ~NOTFOUND" in argv  # an IPv6 literal is not mapped
    v4 = browser_argv(["https://10.99.2.2:443/a"], profile=Path("/p"))
    assert "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 10.99.2.2" in v4
    assert "--origin-to-force-quic-on=10.99.2.2:443" in v4
    assert "--remote-debugging-pipe" in argv and argv[-1] == "about:blank"


def test_qrgo_resumption_and_0rtt_when_the_installed_binary_has_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from quicreality.interop import adapters

    monkeypatch.setattr(adapters, "qrgo_flags", lambda: frozenset({"-resumption", "-0rtt"}))
    (r,) = plan(ep("quicgo", "client", "resumption"))
    assert r.argv[-4:] == ("-resumption", *URLS)  # one process keeps the ticket: both connections
    (z,) = plan(ep("quicgo", "client", "zerortt"))
    assert z.argv[-4:] == ("-0rtt", *URLS)
    (srv,) = plan(ep("quicgo", "server", "zerortt"))
    assert "-0rtt" not in srv.argv and "-mode" in srv.argv
    monkeypatch.setattr(adapters, "qrgo_flags", lambda: frozenset({"-retry"}))  # an old build
    with pytest.raises(Unsupported, match="installed qrgo has no -0rtt"):
        plan(ep("quicgo", "client", "zerortt"))


def test_simple_peers_decline_what_their_programs_lack() -> None:
    with pytest.raises(Unsupported):
        plan(ep("curl", "client", "resumption"))
    with pytest.raises(Unsupported):
        plan(ep("quicgo", "client", "keyupdate"))
    for peer in ("aioquic", "qh3", "quicgo"):
        with pytest.raises(Unsupported):
            plan(ep(peer, "server", "ecn"))
    with pytest.raises(Unsupported, match="chacha20"):
        plan(ep("curl", "client", "chacha20"))
    (q,) = plan(ep("qh3", "client", "chacha20"))
    assert q.env.get("QR_PEER_IMPL") == "qh3" and "TLS_CHACHA20_POLY1305_SHA256" in q.argv
    with pytest.raises(Unsupported, match="no server role"):
        plan(ep("curl", "server", "handshake"))
    with pytest.raises(Unsupported, match="unknown TESTCASE"):
        plan(ep("ours", "client", "bogus"), NONE)
    assert set(SERVERS) <= set(CLIENTS)


def test_endpoint_program_exits_127_with_the_reason() -> None:
    env = {**os.environ, "ROLE": "client", "TESTCASE": "resumption", "REQUESTS": " ".join(URLS),
           "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "quicreality.interop.endpoint", "curl"], env=env,
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 127 and r.stderr.startswith("unsupported:")
    env["ROLE"] = "bogus"
    r = subprocess.run([sys.executable, "-m", "quicreality.interop.endpoint", "curl"], env=env,
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2 and "ROLE" in r.stderr


def test_chromium_page_script_rejects_a_negative_pool() -> None:
    from quicreality.scenarios.peers.chromium_fetch import fetch_script

    assert "fetch(" in fetch_script(["https://a/b"], 0)
    with pytest.raises(ValueError):
        fetch_script(["https://a/b"], -1)


def test_chromium_max_in_flight_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # the adapter puts $QR_CHROMIUM_MAX_IN_FLIGHT on the argv (so the logged command shows it)
    from quicreality.scenarios.peers import chromium_fetch

    monkeypatch.delenv(chromium_fetch.MAX_IN_FLIGHT_ENV, raising=False)
    (cmd,) = plan(ep("chromium", "client", "transfer"))
    assert "--max-in-flight" not in cmd.argv
    monkeypatch.setenv(chromium_fetch.MAX_IN_FLIGHT_ENV, "100")
    (cmd,) = plan(ep("chromium", "client", "transfer"))
    i = cmd.argv.index("--max-in-flight")
    assert cmd.argv[i + 1] == "100" and cmd.argv[-3:] == URLS
    monkeypatch.setenv(chromium_fetch.MAX_IN_FLIGHT_ENV, "many")
    with pytest.raises(ValueError, match="QR_CHROMIUM_MAX_IN_FLIGHT"):
        plan(ep("chromium", "client", "transfer"))
    seen: dict[str, object] = {}
    monkeypatch.setattr(chromium_fetch, "fetch_all",
                        lambda urls, **kw: seen.update(kw) or [])  # type: ignore[func-returns-value]
    args = ["--out-dir", "/o", "--ca", "/ca.pem", "https://10.99.2.2:443/a"]
    chromium_fetch.main(args)
    assert seen["max_in_flight"] == 0  # the CLI's default: all at once, whatever the env says
    chromium_fetch.main(["--max-in-flight", "5", *args])
    assert seen["max_in_flight"] == 5
    with pytest.raises(SystemExit):
        chromium_fetch.main(["--max-in-flight", "-1", *args])
    assert seen["new_connection_after"] == 0
    chromium_fetch.main(["--new-connection-after", "1", *args])
    assert seen["new_connection_after"] == 1
    with pytest.raises(SystemExit):
        chromium_fetch.main(["--new-connection-after", "-1", *args])


def test_chromium_key_update_through_the_quic_field_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    from quicreality.scenarios.peers import chromium_fetch

    assert chromium_fetch.quic_flag_argv({}) == []
    assert chromium_fetch.quic_flag_argv({"FLAGS_a": 3, "FLAGS_b": True}) == [
        "--force-fieldtrials=QUIC/Enabled",
        "--force-fieldtrial-params=QUIC.Enabled:set_quic_flags/FLAGS_a%3D3%2CFLAGS_b%3Dtrue"]
    assert chromium_fetch.quiche_flags() == {}
    flags = chromium_fetch.quiche_flags(100, zero_rtt=False)
    assert flags == {"FLAGS_quic_key_update_confidentiality_limit": 100,
                     "FLAGS_quic_disable_client_tls_zero_rtt": True}
    with pytest.raises(ValueError):
        chromium_fetch.quiche_flags(-1)
    argv = chromium_fetch.browser_argv(URLS, profile=Path("/p"),
                                       quic_flags=chromium_fetch.quiche_flags(100))
    assert ("--force-fieldtrial-params=QUIC.Enabled:set_quic_flags/"
            "FLAGS_quic_key_update_confidentiality_limit%3D100") in argv
    assert not any("fieldtrial" in a for a in chromium_fetch.browser_argv(URLS, profile=Path("/p")))
    seen: dict[str, object] = {}
    monkeypatch.setattr(chromium_fetch, "fetch_all",
                        lambda urls, **kw: seen.update(kw) or [])  # type: ignore[func-returns-value]
    args = ["--out-dir", "/o", "--ca", "/ca.pem", "https://10.99.2.2:443/a"]
    chromium_fetch.main(args)
    assert seen["quic_flags"] == {}
    chromium_fetch.main(["--key-update-after", "50", "--no-0rtt", *args])
    assert seen["quic_flags"] == chromium_fetch.quiche_flags(50, zero_rtt=False)
    with pytest.raises(SystemExit):
        chromium_fetch.main(["--key-update-after", "-1", *args])
