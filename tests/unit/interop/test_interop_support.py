"""Check-only support answers: the adapter's own 127, learned before anything is started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quicreality.interop.adapters import CLIENTS, SERVERS, TESTCASES, Endpoint, plan
from quicreality.interop.cases import CASES
from quicreality.interop.runner import CaseEnv, start_pair
from quicreality.interop.support import Support, SupportCache, check_env, parse_check_output
from quicreality.scenarios.peers.base import Unsupported

REPO = Path(__file__).resolve().parents[3]
FLAGS = frozenset({"client:--session-ticket", "client:--0rtt", "client:--versions",
                   "server:--versions"})


def _answer(peer: str, role: str, tc: str, requests: tuple[str, ...], scratch: str) -> str:
    ep = Endpoint(peer=peer, role=role, testcase=tc, requests=requests, scratch=Path(scratch),
                  preferred="10.99.2.3:4443", keylog=Path(scratch) / "k")
    try:
        plan(ep, FLAGS)
    except Unsupported:
        return "127"
    except ValueError:
        return "2"
    return "0"


def test_a_127_answer_depends_only_on_peer_role_and_testcase(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the cache is keyed by (peer, role, TESTCASE): what else a run's environment holds (its
    # URLs, paths) must not turn a 127 into something else, or the other way round
    from quicreality.interop import adapters

    monkeypatch.setattr(adapters, "qrgo_flags", lambda: frozenset({"-resumption"}))
    envs = [(("https://10.99.2.2:443/a", "https://10.99.2.2:443/b"), "/s1"),
            (tuple(f"https://[fd00::2]:443/{i:03d}" for i in range(40)), "/other/dir")]
    for role, peers in (("server", SERVERS), ("client", CLIENTS)):
        for peer in peers:
            for tc in TESTCASES:
                got = {_answer(peer, role, tc, r, sc) for r, sc in envs}
                assert len(got) == 1 or "127" not in got, (peer, role, tc, got)


def test_parse_check_output_keeps_only_answer_lines() -> None:
    text = ('noise\n{"testcase": "handshake", "status": 0, "reason": ""}\n'
            '{"testcase": "v2", "status": 127, "reason": " no v2 "}\n{"bad": 1}\n')
    got = parse_check_output(text)
    assert got == {"handshake": Support(0, ""), "v2": Support(127, "no v2")}
    assert got["v2"].unsupported and not got["handshake"].unsupported


def test_endpoint_check_only_exits_127_or_0_and_runs_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "QR_CHECK_ONLY": "1", "ROLE": "client",
           "REQUESTS": "https://10.99.2.2:443/a https://10.99.2.2:443/b",
           "DOWNLOADS": str(tmp_path / "dl")}
    argv = [sys.executable, "-m", "quicreality.interop.endpoint", "curl"]
    r = subprocess.run(argv, env={**env, "TESTCASE": "resumption"}, capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 127 and r.stderr.startswith("unsupported: curl's client program")
    r = subprocess.run(argv, env={**env, "TESTCASE": "handshake"}, capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 0 and r.stdout == "" and not (tmp_path / "dl").exists()
    r = subprocess.run(argv, env={**env, "QR_CHECK_TESTCASES": "handshake zerortt chacha20"},
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0
    got = parse_check_output(r.stdout)
    assert {k: v.status for k, v in got.items()} == {"handshake": 0, "zerortt": 127,
                                                     "chacha20": 127}


def test_the_batch_answer_is_the_real_runs_exit_status() -> None:
    # what the check says 127 for, the real adapter (no check flag) exits 127 for, same reason
    common = {"QR_OURS_FLAGS": " ".join(sorted(FLAGS)), "PYTHONPATH": str(REPO)}
    cache = SupportCache()
    cache.learn({("curl", "client"): ["resumption", "handshake"]}, common, workers=1)
    assert cache.unsupported("curl", "client", "handshake") is None
    why = cache.unsupported("curl", "client", "resumption")
    env = {k: v for k, v in check_env("client", ["resumption"], common).items()
           if not k.startswith("QR_CHECK")}
    r = subprocess.run([sys.executable, "-m", "quicreality.interop.endpoint", "curl"], env=env,
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 127 and r.stderr.strip() == f"unsupported: {why}"


def test_cache_learns_once_per_peer_role_and_a_failed_check_says_nothing() -> None:
    calls: list[tuple[str, str]] = []

    def fake(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        calls.append((argv[-1], env["ROLE"]))
        assert env["QR_CHECK_ONLY"] == "1" and env["QR_OURS_FLAGS"] == "x"
        if argv[-1] == "broken":
            return subprocess.CompletedProcess(argv, 1, "", "Traceback")
        lines = [json.dumps({"testcase": tc, "status": 127 if tc == "v2" else 0, "reason": "r"})
                 for tc in env["QR_CHECK_TESTCASES"].split()]
        return subprocess.CompletedProcess(argv, 0, "\n".join(lines), "")

    cache = SupportCache(run=fake)
    wanted = {("aioquic", "server"): ["v2", "handshake"], ("broken", "client"): ["v2"]}
    cache.learn(wanted, {"QR_OURS_FLAGS": "x"})
    cache.learn(wanted, {"QR_OURS_FLAGS": "x"})  # cached: no second process
    assert sorted(calls) == [("aioquic", "server"), ("broken", "client")]
    assert cache.unsupported("aioquic", "server", "v2") == "r"
    assert cache.unsupported("aioquic", "server", "handshake") is None
    assert cache.get("broken", "client", "v2") == Support(-1, "no answer")
    assert cache.unsupported("broken", "client", "v2") is None  # never guessed: run it
    assert cache.get("ours", "client", "v2") is None


def test_a_declined_cell_is_judged_without_a_topology(tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == "resumption")
    cache = SupportCache(run=lambda argv, env: subprocess.CompletedProcess(argv, 0, "\n".join(
        json.dumps({"testcase": tc, "status": 127 if argv[-1] == "curl" else 0,
                    "reason": f"{argv[-1]} cannot"}) for tc in env["QR_CHECK_TESTCASES"].split()),
        ""))
    cache.learn({("ours", "server"): ["resumption"], ("curl", "client"): ["resumption"]},
                {"QR_OURS_FLAGS": ""})
    env = CaseEnv(case, None, tmp_path / "www", ["a", "b"], tmp_path / "certs", tmp_path,
                   cache)
    d = tmp_path / "ours_curl" / "resumption"
    o = start_pair(env, "ours", "curl", 1, d, 1001)()
    assert o.verdict is not None and o.verdict.result == "unsupported"
    assert o.reason == "client: curl cannot"  # the live path's format: "<role>: <reason>"
    assert o.secs == 0.0
    doc = json.loads((d / "verdict.json").read_text())
    assert doc["result"] == "unsupported" and doc["checked_only"] is True
    assert (d / "client.stderr").read_text().startswith("unsupported: curl cannot")
