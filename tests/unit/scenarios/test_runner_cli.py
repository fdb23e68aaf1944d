"""The runner's command line without root: list, privilege check, usage errors."""

from __future__ import annotations

import pytest

from quicreality.scenarios.__main__ import COMMANDS, main


def test_list_prints_every_catalog_scenario_with_a_description(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    names = {line.split()[0] for line in out}
    assert {"lossy-wan", "interop-goodput", "clean-lan", "long-rtt", "bursty-loss", "reorder",
            "blackhole", "bufferbloat"} <= names
    lossy = next(line for line in out if line.startswith("lossy-wan"))
    assert "50 Mbit/s" in lossy and "1 %" in lossy


def test_list_verbose_shows_workloads(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "-v"]) == 0
    assert "relay-iperf3-fwd" in capsys.readouterr().out


def test_run_without_privileges_prints_one_line_and_exits_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from quicreality.scenarios import cleanup

    monkeypatch.setattr(cleanup, "has_net_admin", lambda: False)
    with pytest.raises(SystemExit) as ei:
        main(["run", "lossy-wan", "--quick"])
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "root or CAP_NET_ADMIN" in err and "`run`" in err


@pytest.mark.parametrize(("argv", "needle"), [
    (["run", "no-such-scenario"], "no scenario 'no-such-scenario'"),
    (["run", "lossy-wan", "--only", "nope"], "no workload 'nope'"),
    (["run", "lossy-wan", "--reps", "0"], "--reps: must be >= 1"),
])
def test_run_usage_errors_exit_2_before_touching_the_network(
        argv: list[str], needle: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from quicreality.scenarios import cleanup

    monkeypatch.setattr(cleanup, "has_net_admin", lambda: False)  # must not get that far
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_dispatcher_lists_commands_and_is_extensible(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert {"run", "list", "clean"} <= set(COMMANDS)
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "run NAME|PATH" in out and "clean" in out
    assert main(["bogus"]) == 2
    monkeypatch.setitem(COMMANDS, "hello", lambda argv: 7 if argv == ["x"] else 0)
    assert main(["hello", "x"]) == 7


@pytest.mark.parametrize(("argv", "needle"), [
    (["run", "loss-sweep", "--max-size", "lots"], "--max-size: "),
    (["run", "loss-sweep", "--max-size", "0"], "--max-size: must be > 0"),
    (["run", "loss-sweep", "--max-seconds", "-1"], "--max-seconds: must be > 0"),
])
def test_run_cap_usage_errors_exit_2(argv: list[str], needle: str,
                                     monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from quicreality.scenarios import cleanup

    monkeypatch.setattr(cleanup, "has_net_admin", lambda: False)  # must not get that far
    assert main(argv) == 2
    assert needle in capsys.readouterr().err
