"""Unit tests of capture argv builders, key-log merging and link-check evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest

from quicreality.scenarios.capture import (
    editcap_inject_argv,
    merge_keylogs,
    parse_fields_output,
    tcpdump_argv,
    tshark_ek_argv,
    tshark_fields_argv,
)
from quicreality.scenarios.linkcheck import (
    MeasuredLink,
    Tolerances,
    evaluate,
    expected_rtt_ms,
    parse_ping,
)
from quicreality.scenarios.model import GilbertElliott, Impairment, Link


def test_tcpdump_argv_uses_immediate_mode_and_keeps_root() -> None:
    assert tcpdump_argv("qrlink", "/r/c.pcap", "udp port 443") == [
        "tcpdump", "-i", "qrlink", "--immediate-mode", "-U", "-Z", "root", "-n", "-B", "65536",
        "-s", "0", "-w", "/r/c.pcap", "udp port 443"]
    assert tcpdump_argv("qrlink", "/r/c.pcap", snaplen=128, buffer_kib=4096)[8:12] == [
        "-B", "4096", "-s", "128"]


def test_editcap_inject_argv() -> None:
    assert editcap_inject_argv("a.pcap", "k.log", "b.pcapng") == [
        "editcap", "-F", "pcapng", "--inject-secrets", "tls,k.log", "a.pcap", "b.pcapng"]


def test_tshark_fields_argv() -> None:
    argv = tshark_fields_argv("x.pcapng", ["frame.time_epoch", "quic.packet_number"], "quic",
                              decode_as=["udp.port==4433,quic"], keylog="k.log")
    assert argv[:4] == ["tshark", "-r", "x.pcapng", "-n"]
    assert argv[argv.index("-o"):argv.index("-o") + 2] == ["-o", "tls.keylog_file:k.log"]
    assert argv[argv.index("-d") + 1] == "udp.port==4433,quic"
    assert argv[argv.index("-Y") + 1] == "quic"
    assert argv[-4:] == ["-e", "frame.time_epoch", "-e", "quic.packet_number"]
    with pytest.raises(ValueError):
        tshark_fields_argv("x", [])


def test_tshark_ek_argv() -> None:
    assert tshark_ek_argv("x", "udp", ["udp.length"]) == [
        "tshark", "-r", "x", "-n", "-T", "ek", "-Y", "udp", "-e", "udp.length"]


def test_parse_fields_output_pads_missing_columns() -> None:
    rows = parse_fields_output("a\tb\n1\t2\n3\n")
    assert rows == [{"a": "1", "b": "2"}, {"a": "3", "b": ""}]
    assert parse_fields_output("") == []


def test_merge_keylogs_dedupes_and_drops_junk(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    line1 = "CLIENT_HANDSHAKE_TRAFFIC_SECRET " + "ab" * 32 + " " + "cd" * 32
    line2 = "SERVER_TRAFFIC_SECRET_0 " + "ab" * 32 + " " + "ef" * 48
    a.write_text(f"# comment\n{line1}\n\ngarbage\n")
    b.write_text(f"{line1}\n{line2}\n")
    out = tmp_path / "keys"
    assert merge_keylogs([str(a), str(b), str(tmp_path / "missing")], str(out)) == 2
    assert out.read_text() == f"{line1}\n{line2}\n"


def test_parse_ping() -> None:
    text = ("20 packets transmitted, 19 received, 5% packet loss, time 1000ms\n"
            "rtt min/avg/max/mdev = 40.1/40.27/41.0/0.2 ms\n")
    assert parse_ping(text) == (40.27, pytest.approx(0.05))


LINK = Link.symmetric(Impairment(delay_ms=20, rate_mbit=50, queue_bytes=250_000, loss=0.01))


def test_expected_rtt_includes_ping_serialization() -> None:
    assert expected_rtt_ms(LINK) == pytest.approx(40 + 2 * 84 * 8 / 50e6 * 1000)


def test_evaluate_ok_and_bad() -> None:
    exp_rate = 50 * 1200 / 1228
    good = MeasuredLink(rtt_ms=40.3, rate_mbit={"to_client": exp_rate * 0.99},
                        offered_mbit={"to_client": 60}, loss={"to_client": 0.011},
                        packets={"to_client": 5000})
    res = evaluate(LINK, good)
    assert res.ok, res.summary()
    assert [i.name for i in res.items] == ["rtt", "rate.to_client", "loss.to_client"]
    bad = MeasuredLink(rtt_ms=45.0, rate_mbit={"to_client": exp_rate * 0.9},
                       offered_mbit={"to_client": 60}, loss={"to_client": 0.03},
                       packets={"to_client": 5000})
    res = evaluate(LINK, bad)
    assert not res.ok
    assert all(not i.ok for i in res.items)
    assert "BAD rtt" in res.summary()
    assert res.to_dict()["ok"] is False


def test_bursty_loss_widens_the_bound() -> None:
    ge = Link.symmetric(Impairment(gilbert_elliott=GilbertElliott.from_loss_and_burst(0.02, 5)))
    m = MeasuredLink(loss={"to_server": 0.03}, packets={"to_server": 5000})
    assert evaluate(ge, m, Tolerances(loss_abs=0)).ok
    plain = Link.symmetric(Impairment(loss=0.02))
    assert not evaluate(plain, m, Tolerances(loss_abs=0)).ok


def test_clean_without_privileges_prints_one_line_and_exits_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from quicreality.scenarios import cleanup
    from quicreality.scenarios.__main__ import main

    monkeypatch.setattr(cleanup, "has_net_admin", lambda: False)
    with pytest.raises(SystemExit) as ei:
        main(["clean"])
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "root or CAP_NET_ADMIN" in err


def test_a_failed_udp_probe_is_tried_again_up_to_probe_tries(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from quicreality.scenarios import linkcheck

    calls: list[int] = []

    def once(topo: object, direction: str, mbit: float, seconds: float,
             port: int) -> dict[str, float]:
        calls.append(port)
        if len(calls) < 3:
            raise RuntimeError("iperf3 probe failed: unable to read from stream socket")
        return {"bits_per_second": 1e6}

    monkeypatch.setattr(linkcheck, "_iperf_udp_once", once)
    assert linkcheck._iperf_udp(object(), "to_client", 10.0, 1.0, 5299) == {  # type: ignore[arg-type]
        "bits_per_second": 1e6}
    assert len(calls) == 3 == linkcheck.PROBE_TRIES
    calls.clear()
    with pytest.raises(RuntimeError, match="stream socket"):
        linkcheck._iperf_udp(object(), "to_client", 10.0, 1.0, 5299, tries=2)  # type: ignore[arg-type]
    assert len(calls) == 2
