"""The matrix run: every case x server x client (x repetition) over the case's emulated link.

Theory of operation
-------------------
For each selected case the runner builds **one** topology (the scenario runner's namespaces
and userspace emulator, :class:`~quicreality.scenarios.topology.Topology`) with the case's link
and generates the case's random files (QIR-style random names and bytes).  Then, per pair and
repetition::

    topo.rearm(seed)                       # same loss pattern for every pair of the case
    tcpdump on qrlink, client and server side
    server adapter  (python -m quicreality.interop.endpoint PEER, ROLE=server) in the server ns
    client adapter  (ROLE=client, REQUESTS=...) in the client ns; wait
    stop the server (SIGTERM: qlogs flush), stop the captures
    127 from either side -> unsupported (the adapter's reason is kept)
    else merge key logs, inject them into both pcaps, tshark -> Trace, compare the files
         -> verdicts.judge(case.check, evidence)

Everything of a pair goes to ``<run>/<server>_<client>/<case>/`` (QIR's layout, so its
page's links work): ``server.std{out,err}``, ``client.std{out,err}``, ``keys.log``,
``{client,server}.pcapng`` (secrets embedded), ``qlog/``, ``verdict.json``.  The downloads
and served files live in a scratch directory that is always removed.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import random
import shutil
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..scenarios.capture import Capture, inject_secrets, start_capture
from ..scenarios.peers import chromium, paths
from ..scenarios.peers.base import Command, url_for
from ..scenarios.peers.certs import make_test_cert
from ..scenarios.peers.process import PeerFailed, PeerProcess
from ..scenarios.results import git_info, write_json
from ..scenarios.topology import (
    ADDRESSES,
    ADDRESSES6,
    LINK_IF,
    OWNER_DIR,
    Topology,
    TopologyError,
    new_run_id,
)
from ..scenarios.workloads.context import merge_client_first
from .adapters import EXIT_UNSUPPORTED, ours_flags
from .cases import Case
from .trace import read_trace
from .verdicts import Evidence, FileCheck, Verdict, fail, judge

__all__ = ["LINK_FEATURES", "MatrixOptions", "Outcome", "run_matrix"]

PORT = 443
PREFERRED_PORT = 4443
#: What the runner's links offer beyond the base model (see cases.Case.needs): ``ipv6``, the
#: topology's IPv6 addresses (:data:`~quicreality.scenarios.topology.ADDRESSES6`) on the link.
LINK_FEATURES: frozenset[str] = frozenset({"ipv6"})
_INSTALLED: dict[str, Callable[[], Path]] = {
    "quicgo": paths.qrgo, "ngtcp2": paths.gtlsserver, "curl": paths.curl_h3,
    "aioquic": lambda: paths.aioquic_script("h3server.py"),
    "qh3": lambda: paths.aioquic_script("h3server.py"),
    "chromium": chromium.binary,
}


@dataclass(frozen=True, slots=True)
class MatrixOptions:
    """What ``run`` was asked."""

    cases: tuple[Case, ...]
    servers: tuple[str, ...]
    clients: tuple[str, ...]
    results: Path
    reps: int | None = None
    seed: int = 1


@dataclass(frozen=True, slots=True)
class Outcome:
    """One pair x case x repetition: the verdict (None = not run) and its tidy sample."""

    case: Case
    server: str
    client: str
    rep: int
    verdict: Verdict | None
    reason: str
    secs: float
    sample: dict[str, Any] = field(default_factory=dict)


def missing_peer(peer: str) -> str:
    """Why ``peer`` cannot run here ("" if it can)."""
    fn = _INSTALLED.get(peer)
    if fn is None:
        return ""
    try:
        fn()
    except paths.PeerNotInstalled as e:
        return str(e)
    return ""


def _slug(rng: random.Random, n: int = 10) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(n))


def make_files(case: Case, www: Path, rng: random.Random) -> list[str]:
    """The case's random files in ``www``; returns their names in request order."""
    www.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    for size in case.files:
        name = _slug(rng, 250 if case.long_names else 10)
        while name in names:
            name = _slug(rng, 250 if case.long_names else 10)
        (www / name).write_bytes(os.urandom(size))
        names.append(name)
    return names


def compare_files(www: Path, downloads: Path, names: Sequence[str]) -> FileCheck:
    """QIR's ``_check_files``: exactly the requested files, byte-identical."""
    got = {p.name for p in downloads.iterdir() if p.is_file()} if downloads.is_dir() else set()
    missing = [n for n in names if n not in got]
    extra = sorted(got - set(names))
    matched, bad = 0, []
    for n in names:
        if n in got:
            if (downloads / n).read_bytes() == (www / n).read_bytes():
                matched += 1
            else:
                bad.append(n)
    problems = []
    if missing:
        problems.append(f"{len(missing)} of {len(names)} files missing")
    if extra:
        problems.append(f"{len(extra)} unexpected file(s)")
    if bad:
        problems.append(f"{len(bad)} file(s) differ from the served ones")
    return FileCheck(expected=len(names), matched=matched, problem="; ".join(problems))


def server_address(case: Case) -> str:
    """The server address the case's clients use: IPv6 for a case that needs ``ipv6``."""
    return ADDRESSES6["server"] if "ipv6" in case.needs else ADDRESSES["server"]


def _endpoint(topo: Topology, host: str, peer: str, env: dict[str, str], d: Path,
              name: str) -> PeerProcess:
    argv = topo.exec_argv(host, [sys.executable, "-m", "quicreality.interop.endpoint", peer])
    cmd = Command(argv=tuple(argv), env=env, cwd=paths.REPO_ROOT)
    return PeerProcess(cmd, name=name, log_dir=d).start()


def _unsupported_reason(p: PeerProcess) -> str:
    lines = [ln for ln in p.stderr().splitlines() if ln.startswith("unsupported:")]
    return lines[-1].removeprefix("unsupported:").strip() if lines else "exit 127"


@dataclass
class _CaseEnv:
    """What every pair of one case shares."""

    case: Case
    topo: Topology
    www: Path
    names: list[str]
    certs: Path
    scratch: Path


def run_pair(env: _CaseEnv, server: str, client: str, rep: int, d: Path,
             seed: int) -> Outcome:
    """One repetition of ``env.case`` between ``server`` and ``client`` (see the module doc)."""
    case, topo = env.case, env.topo
    d.mkdir(parents=True, exist_ok=True)
    for sub in ("keys", "qlog/server", "qlog/client"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    dl = Path(tempfile.mkdtemp(prefix="dl-", dir=env.scratch))
    sscratch = Path(tempfile.mkdtemp(prefix="srv-", dir=env.scratch))
    cscratch = Path(tempfile.mkdtemp(prefix="cli-", dir=env.scratch))
    v6 = "ipv6" in case.needs
    server_ip = server_address(case)
    requests = [url_for(server_ip, PORT, n) for n in env.names] or [url_for(server_ip, PORT, "")]
    common = {"CERTS": str(env.certs), "QR_TIMEOUT": f"{case.timeout_s:g}",
              "QR_OURS_FLAGS": " ".join(sorted(ours_flags()))}
    senv = {**common, "ROLE": "server", "TESTCASE": case.testname("server"),
            "SSLKEYLOGFILE": str(d / "keys" / "server.keys"), "QLOGDIR": str(d / "qlog/server"),
            "WWW": str(env.www), "QR_LISTEN": f"[::]:{PORT}" if v6 else f"0.0.0.0:{PORT}",
            "QR_PREFERRED": f"{ADDRESSES['server']}:{PREFERRED_PORT}", "QR_SCRATCH": str(sscratch)}
    cenv = {**common, "ROLE": "client", "TESTCASE": case.testname("client"),
            "REQUESTS": " ".join(requests), "SSLKEYLOGFILE": str(d / "keys" / "client.keys"),
            "QLOGDIR": str(d / "qlog/client"), "DOWNLOADS": str(dl), "QR_SCRATCH": str(cscratch)}
    topo.rearm(seed)
    caps: list[Capture] = []
    procs: list[PeerProcess] = []
    t0 = time.monotonic()
    client_rc: int | None = None
    verdict: Verdict | None = None
    try:
        for host in ("client", "server"):
            caps.append(start_capture(topo.exec_argv(host, []), LINK_IF, str(d / f"{host}.pcap"),
                                      bpf_filter="udp"))  # QUIC only: not crosstraffic's TCP
        srv = _endpoint(topo, "server", server, senv, d, "server")
        procs.append(srv)
        try:
            srv.wait_udp_ready(PORT, timeout=20.0)
        except PeerFailed:
            rc = srv.proc.poll() if srv.proc else None
            if rc == EXIT_UNSUPPORTED:
                verdict = Verdict("unsupported", f"server: {_unsupported_reason(srv)}")
            else:
                verdict = fail(f"server did not start (exit {rc}); see server.stderr")
        cross = _start_crosstraffic(topo, d, procs) if case.crosstraffic and verdict is None else None
        if verdict is None:
            cli = _endpoint(topo, "client", client, cenv, d, "client")
            procs.append(cli)
            assert cli.proc is not None
            try:
                client_rc = cli.proc.wait(timeout=case.timeout_s + 30)
            except subprocess.TimeoutExpired:
                cli.stop()
                verdict = fail(f"client hung (still running after {case.timeout_s + 30:.0f} s)")
            if client_rc == EXIT_UNSUPPORTED:
                verdict = Verdict("unsupported", f"client: {_unsupported_reason(cli)}")
        if cross is not None:
            cross.stop(grace=1.0)
    finally:
        for p in reversed(procs):
            with contextlib.suppress(Exception):
                p.stop(grace=3.0)
        for i, cap in enumerate(caps):
            with contextlib.suppress(Exception):
                cap.stop(settle_s=0.5 if i == 0 else 0.0)
    secs = time.monotonic() - t0
    if verdict is None:
        verdict = _judge(env, d, dl, client_rc)
    with contextlib.suppress(Exception):
        for tmp in (dl, sscratch, cscratch):
            shutil.rmtree(tmp, ignore_errors=True)
    sample = {"case": case.name, "abbr": case.abbr, "server": server, "client": client,
              "rep": rep, "result": verdict.result, "reason": verdict.reason,
              "secs": round(secs, 3), "client_exit": client_rc, **dict(verdict.metrics)}
    write_json(d / "verdict.json", sample)
    return Outcome(case, server, client, rep, verdict, verdict.reason, secs, sample)


def _start_crosstraffic(topo: Topology, d: Path, procs: list[PeerProcess]) -> PeerProcess:
    """iperf3 TCP cubic from server to client (``-R``) for the whole QUIC transfer."""
    ip3 = str(paths.iperf3())
    srv = PeerProcess(Command(argv=tuple(topo.exec_argv("server", [ip3, "-s", "-p", "5201"]))),
                      name="iperf3-server", log_dir=d).start()
    procs.append(srv)
    srv.wait_tcp_ready(5201, timeout=10.0)
    cli = PeerProcess(Command(argv=tuple(topo.exec_argv("client", [
        ip3, "-c", ADDRESSES["server"], "-p", "5201", "-t", "600", "-R", "-C", "cubic"]))),
        name="iperf3-client", log_dir=d).start()
    procs.append(cli)
    time.sleep(1.0)  # let TCP reach the link rate before the QUIC client starts
    return cli


def _judge(env: _CaseEnv, d: Path, dl: Path, client_rc: int | None) -> Verdict:
    """Merge keys, decrypt both captures, compare files, run the case's check."""
    keys = d / "keys.log"
    logs = sorted((d / "keys").glob("*.keys"), key=lambda p: (p.stem != "client", p.stem))
    try:
        n = merge_client_first(logs, keys)
        traces = {}
        for host in ("client", "server"):
            pcap = d / f"{host}.pcap"
            out = d / f"{host}.pcapng"
            inject_secrets(str(pcap), str(keys), str(out))
            pcap.unlink()
            traces[host] = read_trace(out, server_address(env.case))
    except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError) as e:
        return fail(f"could not read the capture: {e}")
    try:
        files = compare_files(env.www, dl, env.names) if env.names else FileCheck(0, 0)
    except OSError as e:
        return fail(f"could not compare the files: {e}")
    ev = Evidence(server=traces["server"], client=traces["client"], files=files, keys=n,
                  expect_handshakes=1,
                  file_bytes=sum(env.case.files),
                  filename_bytes=sum(len(x) + 1 for x in env.names))
    v = judge(env.case.check, ev)
    if client_rc not in (0, None) and v.result == "succeeded":
        return fail(f"client exited {client_rc} although the wire check passed ({v.reason})",
                    **dict(v.metrics))
    if client_rc not in (0, None):
        return fail(f"{v.reason} (client exited {client_rc})", **dict(v.metrics))
    return v


def run_case(case: Case, opts: MatrixOptions, run_dir: Path, scratch: Path,
             on_outcome: Callable[[Outcome], None], pairs: Sequence[tuple[str, str]],
             certs: Path) -> list[Outcome]:
    """Every pair x repetition of ``case`` on one topology."""
    reps = opts.reps or case.repetitions
    missing = sorted(case.needs - LINK_FEATURES)
    outcomes: list[Outcome] = []
    if missing:
        why = (f"the emulator in this checkout has no {', '.join(missing)} stage: the case's "
               f"link cannot be built")
        for s, c in pairs:
            o = Outcome(case, s, c, 0, None, why, 0.0,
                        {"case": case.name, "abbr": case.abbr, "server": s, "client": c,
                         "rep": 0, "result": None, "reason": why})
            outcomes.append(o)
            on_outcome(o)
        return outcomes
    rng = random.Random(f"{opts.seed}-{case.name}")
    www = scratch / f"www-{case.name}"
    names = make_files(case, www, rng)
    emu_dir = run_dir / "emulator" / case.name
    emu_dir.mkdir(parents=True, exist_ok=True)
    with Topology.create(new_run_id(), case.link, "userspace", seed=opts.seed,
                         workdir=str(emu_dir)) as topo:
        env = _CaseEnv(case, topo, www, names, certs, scratch)
        for s, c in pairs:
            for rep in range(1, reps + 1):
                d = run_dir / f"{s}_{c}" / case.name
                if reps > 1:
                    d = d / str(rep)
                try:
                    o = run_pair(env, s, c, rep, d, opts.seed * 1000 + rep)
                except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as e:
                    v = fail(f"runner error: {type(e).__name__}: {e}")
                    o = Outcome(case, s, c, rep, v, v.reason, 0.0,
                                {"case": case.name, "abbr": case.abbr, "server": s, "client": c,
                                 "rep": rep, "result": v.result, "reason": v.reason})
                outcomes.append(o)
                on_outcome(o)
    shutil.rmtree(www, ignore_errors=True)
    return outcomes


#: SANs that pad the amplificationlimit certificate beyond QIR's 7500 bytes of CRYPTO data.
_PAD_SANS = 260


def make_certs(d: Path, *, big: bool) -> Path:
    """QIR's ``/certs``: ``cert.pem``, ``priv.key`` (and our ``ca.pem``) for the server address;
    ``big``: a leaf padded with DNS names so the server's flight exceeds 7500 bytes."""
    pad = [f"pad-{i:03d}.amplification.test" for i in range(_PAD_SANS)] if big else []
    cert, key, ca = make_test_cert(d / "pki", extra_sans=[ADDRESSES["server"],
                                                          ADDRESSES6["server"], *pad])
    for src, dst in ((cert, "cert.pem"), (key, "priv.key"), (ca, "ca.pem")):
        shutil.copy(src, d / dst)
    return d


def run_matrix(opts: MatrixOptions, run_dir: Path,
               on_outcome: Callable[[Outcome], None]) -> list[Outcome]:
    """Run every case of ``opts`` (see the module docstring); returns every outcome."""
    rid = new_run_id()
    # the owner marker keeps `scenarios clean` (run by anyone meanwhile) off our scratch dir
    os.makedirs(OWNER_DIR, exist_ok=True)
    owner = Path(OWNER_DIR) / f"qr-{rid}.owner"
    owner.write_text(str(os.getpid()))
    scratch = Path(tempfile.mkdtemp(prefix=f"qr-{rid}-scratch-"))
    outcomes: list[Outcome] = []
    try:
        certs = make_certs(scratch / "certs", big=False)
        big_certs = (make_certs(scratch / "certs-big", big=True)
                     if any(c.big_cert for c in opts.cases) else certs)
        usable = {p: missing_peer(p) for p in {*opts.servers, *opts.clients}}
        for case in opts.cases:
            pairs = []
            for s in opts.servers:
                for c in opts.clients:
                    why = usable[s] or usable[c]
                    if why:
                        o = Outcome(case, s, c, 0, None, why, 0.0,
                                    {"case": case.name, "abbr": case.abbr, "server": s,
                                     "client": c, "rep": 0, "result": None, "reason": why})
                        outcomes.append(o)
                        on_outcome(o)
                    else:
                        pairs.append((s, c))
            try:
                outcomes += run_case(case, opts, run_dir, scratch, on_outcome, pairs,
                                     big_certs if case.big_cert else certs)
            except TopologyError as e:
                for s, c in pairs:
                    o = Outcome(case, s, c, 0, None, f"topology failed: {e}", 0.0,
                                {"case": case.name, "abbr": case.abbr, "server": s, "client": c,
                                 "rep": 0, "result": None, "reason": f"topology failed: {e}"})
                    outcomes.append(o)
                    on_outcome(o)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        owner.unlink(missing_ok=True)
    return outcomes


def run_info(opts: MatrixOptions) -> dict[str, Any]:
    """run.json: what was asked, the git state, when."""
    return {"started_utc": _dt.datetime.now(_dt.UTC).isoformat(), "argv": sys.argv,
            "cases": [c.name for c in opts.cases], "servers": list(opts.servers),
            "clients": list(opts.clients), "reps": opts.reps, "seed": opts.seed,
            "git": git_info(), "kernel": os.uname().release, "backend": "userspace"}


def dump_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` as JSON lines."""
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, sort_keys=True) + "\n")
