"""The case catalog and the CLI's list/usage paths (no root needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from quicreality.interop.cases import CASES, CaseError, by_name, select
from quicreality.interop.runner import LINK_FEATURES, server_address
from quicreality.interop.verdicts import CHECKS
from quicreality.scenarios.topology import ADDRESSES, ADDRESSES6

REPO = Path(__file__).resolve().parents[3]
QIR = ["versionnegotiation", "handshake", "transfer", "longrtt", "chacha20", "multiplexing",
       "retry", "resumption", "zerortt", "http3", "blackhole", "keyupdate", "ecn",
       "amplificationlimit", "handshakeloss", "transferloss", "handshakecorruption",
       "transfercorruption", "ipv6", "v2", "rebind-port", "rebind-addr", "connectionmigration",
       "goodput", "crosstraffic"]


def test_every_qir_case_with_a_check_and_a_valid_link() -> None:
    assert [c.name for c in CASES] == QIR
    assert len({c.abbr for c in CASES}) == len(CASES)
    for c in CASES:
        assert c.check in CHECKS, c.name
        c.link.validate()
    assert {c.name for c in CASES if c.measurement} == {"goodput", "crosstraffic"}


def test_every_case_can_be_built_and_ipv6_targets_the_ipv6_address() -> None:
    for c in CASES:
        assert c.needs <= LINK_FEATURES, c.name
    assert server_address(by_name("ipv6")) == ADDRESSES6["server"] == "fd00::2"
    assert server_address(by_name("transfer")) == ADDRESSES["server"]


def test_links_follow_qir_scenarios() -> None:
    assert by_name("longrtt").link.base_rtt_ms == 1500
    assert by_name("handshakeloss").link.to_server.expected_loss == pytest.approx(0.30, abs=0.01)
    assert by_name("transfercorruption").link.to_client.corrupt == 0.02
    bh = by_name("blackhole").link.to_server.blackhole
    assert bh is not None and (bh.on_s, bh.off_s) == (5.0, 2.0)
    assert len(by_name("handshakeloss").files) == 50


def test_testnames_as_qir_tells_the_endpoints() -> None:
    assert by_name("multiplexing").testname("client") == "transfer"
    assert by_name("handshakeloss").testname("server") == "multiconnect"
    assert by_name("keyupdate").testname("client") == "keyupdate"
    assert by_name("keyupdate").testname("server") == "transfer"
    assert by_name("retry").testname("server") == "retry"


def test_select_by_name_or_abbreviation_in_qir_order() -> None:
    assert [c.name for c in select("transfer,H,S")] == ["handshake", "transfer", "retry"]
    assert select(None) == CASES
    with pytest.raises(CaseError, match="unknown test case"):
        select("handshake,nope")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "quicreality.interop", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)


def test_cli_list_and_usage_errors() -> None:
    r = _cli("list")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert len(lines) == len(CASES) and lines[1].split()[:2] == ["H", "handshake"]
    assert "750ms" in next(ln for ln in lines if " longrtt " in ln)
    assert _cli("run", "--tests", "nope").returncode == 2
    assert _cli("run", "--clients", "lynx").returncode == 2
    assert _cli("run", "--reps", "0").returncode == 2
    assert _cli("frobnicate").returncode == 2
