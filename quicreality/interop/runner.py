"""The matrix run: every case x server x client (x repetition) over the case's emulated link.

Theory of operation
-------------------
Before anything is built, every adapter the run will start is asked in check-only mode which
of its test cases it declines (:mod:`.support`: ``QR_CHECK_ONLY=1``, one process per peer and
role); a cell either side answered 127 for gets that ``unsupported`` verdict without a link, a
capture or a peer being started.  The cases are then run grouped by link
(:func:`by_link`); a case's topology (the scenario runner's namespaces and userspace emulator,
:class:`~quicreality.scenarios.topology.Topology`) is kept for the next case with the same
link when it is verifiably clean (:mod:`.links`).  Per case the runner generates the random
files (QIR-style random names and bytes), and per pair and repetition::

    topo.rearm(seed)                       # same loss pattern for every pair of the case
    server adapter  (python -m quicreality.interop.endpoint PEER, ROLE=server) in the server ns
    tcpdump on qrlink, client and server side (started together, while the server starts)
    client adapter  (ROLE=client, REQUESTS=...) in the client ns; wait
    stop the server (SIGTERM: qlogs flush), stop the captures; topo.rearm(seed) again: the
         emulator's counters of this run alone
    127 from either side -> unsupported (the adapter's reason is kept)
    else, in the background (:class:`~.pool.OrderedPool`, one niced thread, at most two runs
         waiting) while the next run goes on: merge key logs, inject them into both pcaps,
         tshark -> Trace, compare the files -> verdicts.judge(case.check, evidence)

The analysis reads only its own run's files, so its verdict does not depend on when it runs;
outcomes are reported in run order.  Before each run of a measurement (goodput, crosstraffic)
the pool is drained, so no analysis shares the CPU with a measured transfer.

Everything of a pair goes to ``<run>/<server>_<client>/<case>/`` (QIR's layout, so its
page's links work): ``server.std{out,err}``, ``client.std{out,err}``, ``keys.log``,
``{client,server}.pcapng`` (secrets embedded), ``qlog/``, ``verdict.json`` (with the run's
phase times and link counters).  The downloads and served files live in a scratch directory
that is always removed.
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

from ..scenarios.capture import Capture, inject_secrets, start_captures, stop_captures
from ..scenarios.model import Link
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
from .endpoint import CHECK_ONLY_ENV
from .links import LinkCache
from .pool import OrderedPool
from .support import SupportCache
from .trace import read_trace
from .verdicts import Evidence, FileCheck, Verdict, fail, judge

__all__ = ["LINK_FEATURES", "MatrixOptions", "Outcome", "by_link", "run_matrix", "run_pair",
           "start_pair"]

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
class CaseEnv:
    """What every pair of one case shares."""

    case: Case
    topo: Topology | None
    www: Path
    names: list[str]
    certs: Path
    scratch: Path
    support: SupportCache | None = None
    pending: int = 0  #: analyses submitted and not yet delivered
    submitted: bool = False  #: every pair of the case has been started


def declined_verdict(env: CaseEnv, server: str, client: str) -> Verdict | None:
    """The cached 127 answer of either adapter (the server's first, as a run checks it)."""
    if env.support is None:
        return None
    for role, peer in (("server", server), ("client", client)):
        why = env.support.unsupported(peer, role, env.case.testname(role))
        if why is not None:
            return Verdict("unsupported", f"{role}: {why}")
    return None


def _sample(case: Case, server: str, client: str, rep: int, verdict: Verdict, secs: float,
            client_rc: int | None, **extra: Any) -> dict[str, Any]:
    return {"case": case.name, "abbr": case.abbr, "server": server, "client": client,
            "rep": rep, "result": verdict.result, "reason": verdict.reason,
            "secs": round(secs, 3), "client_exit": client_rc, **dict(verdict.metrics), **extra}


def run_pair(env: CaseEnv, server: str, client: str, rep: int, d: Path,
             seed: int) -> Outcome:
    """One repetition of ``env.case`` between ``server`` and ``client`` (see the module doc)."""
    return start_pair(env, server, client, rep, d, seed)()


def start_pair(env: CaseEnv, server: str, client: str, rep: int, d: Path,
               seed: int) -> Callable[[], Outcome]:
    """Run the live part of one repetition (link, captures, peers); returns the analysis that
    turns its files into the :class:`Outcome` (keys, editcap, tshark, check), to be called now
    or in the background (:class:`~.pool.OrderedPool`): it reads only this run's files."""
    case = env.case
    d.mkdir(parents=True, exist_ok=True)
    declined = declined_verdict(env, server, client)
    if declined is not None:  # the adapter said 127 in check-only mode: nothing is started
        role = declined.reason.split(":", 1)[0]
        (d / f"{role}.stderr").write_text(
            f"unsupported: {declined.reason.split(': ', 1)[1]}\n"
            f"(answered by the adapter with {CHECK_ONLY_ENV}=1 before the run; nothing started)\n")
        sample = _sample(case, server, client, rep, declined, 0.0, None, checked_only=True)
        write_json(d / "verdict.json", sample)
        return lambda: Outcome(case, server, client, rep, declined, declined.reason, 0.0, sample)
    topo = env.topo
    assert topo is not None, "a case with runnable pairs has a topology"
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
    timing: dict[str, float] = {}
    t0 = time.monotonic()
    topo.rearm(seed)
    caps: list[Capture] = []
    procs: list[PeerProcess] = []
    client_rc: int | None = None
    verdict: Verdict | None = None

    def mark(phase: str) -> None:
        timing[phase] = round(time.monotonic() - t0 - sum(timing.values()), 3)

    try:
        # the server starts first: it sends nothing before a client does, so its start-up
        # overlaps the captures' (the client starts only once both capture)
        srv = _endpoint(topo, "server", server, senv, d, "server")
        procs.append(srv)
        caps = start_captures([(topo.exec_argv(host, []), LINK_IF, str(d / f"{host}.pcap"))
                               for host in ("client", "server")],
                              bpf_filter="udp")  # QUIC only: not crosstraffic's TCP
        mark("captures_start")
        try:
            srv.wait_udp_ready(PORT, timeout=20.0)
        except PeerFailed:
            rc = srv.proc.poll() if srv.proc else None
            if rc == EXIT_UNSUPPORTED:
                verdict = Verdict("unsupported", f"server: {_unsupported_reason(srv)}")
            else:
                verdict = fail(f"server did not start (exit {rc}); see server.stderr")
        mark("server_ready")
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
        mark("client")
        if cross is not None:
            cross.stop(grace=1.0)
    finally:
        for p in reversed(procs):
            with contextlib.suppress(Exception):
                p.stop(grace=3.0)
        mark("peers_stop")
        with contextlib.suppress(Exception):
            stop_captures(caps, settle_s=0.5)
        mark("captures_stop")
    secs = time.monotonic() - t0
    link: dict[str, Any] | None = None
    with contextlib.suppress(TopologyError):
        link = topo.rearm(seed)  # closes the period: the link counters of this run only
    early = verdict

    def analyse() -> Outcome:
        t1 = time.monotonic()
        v = early if early is not None else _judge(env, d, dl, client_rc)
        timing["analysis"] = round(time.monotonic() - t1, 3)
        for tmp in (dl, sscratch, cscratch):
            shutil.rmtree(tmp, ignore_errors=True)
        sample = _sample(case, server, client, rep, v, secs, client_rc)
        write_json(d / "verdict.json", {**sample, "timing": timing,
                                        **({"link": link} if link else {})})
        return Outcome(case, server, client, rep, v, v.reason, secs, sample)

    return analyse


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


def _judge(env: CaseEnv, d: Path, dl: Path, client_rc: int | None) -> Verdict:
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


def by_link(cases: Sequence[Case]) -> list[Case]:
    """``cases`` grouped by link (first appearance order, QIR's order within a group), so the
    cases of one link run one after the other on one topology (:class:`~.links.LinkCache`)."""
    links: list[Link] = []
    for c in cases:
        if c.link not in links:
            links.append(c.link)
    return [c for lk in links for c in cases if c.link == lk]


def not_run(case: Case, s: str, c: str, why: str) -> Outcome:
    """The outcome of a cell that was never started (``result`` None), with the reason."""
    return Outcome(case, s, c, 0, None, why, 0.0, {"case": case.name, "abbr": case.abbr,
                                                   "server": s, "client": c, "rep": 0,
                                                   "result": None, "reason": why})


def _runner_error(case: Case, s: str, c: str, rep: int, e: BaseException) -> Outcome:
    v = fail(f"runner error: {type(e).__name__}: {e}")
    return Outcome(case, s, c, rep, v, v.reason, 0.0,
                   {"case": case.name, "abbr": case.abbr, "server": s, "client": c,
                    "rep": rep, "result": v.result, "reason": v.reason})


def guarded(job: Callable[[], Outcome], case: Case, s: str, c: str, rep: int) -> Outcome:
    """Run ``job``; a runner error (OS, subprocess, ...) becomes a failed outcome, not a crash."""
    try:
        return job()
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as e:
        return _runner_error(case, s, c, rep, e)


def learn_support(support: SupportCache, cases: Sequence[Case],
                  pairs: Sequence[tuple[str, str]]) -> None:
    """Ask every adapter the run will start about its test cases, once (:mod:`.support`)."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for case in cases:
        for s, c in pairs:
            wanted.setdefault((s, "server"), set()).add(case.testname("server"))
            wanted.setdefault((c, "client"), set()).add(case.testname("client"))
    support.learn(wanted, {"QR_OURS_FLAGS": " ".join(sorted(ours_flags()))})


@dataclass(frozen=True, slots=True)
class Levers:
    """How the runner saves wall time; verdicts do not depend on them (see docs/interop.md).

    Attributes:
        analysis_workers: background analysis threads (0: analyse each run before the next).
        check_support: ask the adapters for 127 before starting anything.
        reuse_links: run the cases of one link together on one topology.
        jobs: cells run at once, each job on its own topology (:mod:`.parallel`).
        cpu_budget: cores the running cells may use together (``jobs > 1``).
        quiet_budget: the same while a measurement runs.
    """

    analysis_workers: int = 1
    check_support: bool = True
    reuse_links: bool = True
    jobs: int = 1
    cpu_budget: float = 1.6
    quiet_budget: float = 0.0


#: :func:`~.parallel.matrix_jobs`'s signature: the ``--jobs N`` body (passed in by the caller,
#: so that this module does not import the one that builds on it).
JobsRunner = Callable[[MatrixOptions, Path, Path, tuple[Path, Path], SupportCache | None,
                       dict[str, str], Sequence[tuple[str, str]], "Levers", list[Outcome],
                       Callable[[Outcome], None]], None]


def run_matrix(opts: MatrixOptions, run_dir: Path,
               on_outcome: Callable[[Outcome], None], levers: Levers = Levers(),
               jobs_runner: JobsRunner | None = None) -> list[Outcome]:
    """Run every case of ``opts`` (see the module docstring); returns every outcome, in the
    order they were reported to ``on_outcome`` (with ``levers.jobs > 1``: ``jobs_runner``
    runs the cells, and the outcomes are returned in the ``--jobs 1`` order)."""
    rid = new_run_id()
    # the owner marker keeps `scenarios clean` (run by anyone meanwhile) off our scratch dir
    os.makedirs(OWNER_DIR, exist_ok=True)
    owner = Path(OWNER_DIR) / f"qr-{rid}.owner"
    owner.write_text(str(os.getpid()))
    scratch = Path(tempfile.mkdtemp(prefix=f"qr-{rid}-scratch-"))
    outcomes: list[Outcome] = []
    envs: dict[str, CaseEnv] = {}
    support = SupportCache() if levers.check_support else None
    pool: OrderedPool[Outcome] = OrderedPool(workers=max(1, levers.analysis_workers),
                                             max_pending=2)
    inline = levers.analysis_workers < 1

    def deliver(done: Sequence[Outcome]) -> None:
        for o in done:
            outcomes.append(o)
            on_outcome(o)
            env = envs.get(o.case.name)
            if env is not None and o.verdict is not None:
                env.pending -= 1
                _free_case(env)

    def submit(job: Callable[[], Outcome], case: Case, s: str, c: str, rep: int) -> None:
        if inline:
            deliver([guarded(job, case, s, c, rep)])
            return
        pool.submit(lambda: guarded(job, case, s, c, rep))
        deliver(pool.ready())

    try:
        certs = make_certs(scratch / "certs", big=False)
        big_certs = (make_certs(scratch / "certs-big", big=True)
                     if any(c.big_cert for c in opts.cases) else certs)
        usable = {p: missing_peer(p) for p in {*opts.servers, *opts.clients}}
        all_pairs = [(s, c) for s in opts.servers for c in opts.clients]
        runnable = [(s, c) for s, c in all_pairs if not (usable[s] or usable[c])]
        buildable = [c for c in opts.cases if not (c.needs - LINK_FEATURES)]
        if support is not None and runnable:
            learn_support(support, buildable, runnable)
        if levers.jobs > 1:
            if jobs_runner is None:
                raise ValueError("levers.jobs > 1 needs jobs_runner (parallel.matrix_jobs)")
            jobs_runner(opts, run_dir, scratch, (certs, big_certs), support, usable, runnable,
                        levers, outcomes, on_outcome)
            return outcomes
        with LinkCache(opts.seed) as links:
            for case in (by_link(opts.cases) if levers.reuse_links else opts.cases):
                for s, c in all_pairs:
                    why = usable[s] or usable[c]
                    if why:
                        deliver([not_run(case, s, c, why)])
                missing = sorted(case.needs - LINK_FEATURES)
                if missing:
                    why = (f"the emulator in this checkout has no {', '.join(missing)} stage: "
                           f"the case's link cannot be built")
                    deliver([not_run(case, s, c, why) for s, c in runnable])
                    continue
                if not levers.reuse_links:
                    links.close()
                _run_case(case, opts, run_dir, scratch, runnable,
                          big_certs if case.big_cert else certs, support, links, envs,
                          submit, lambda: deliver(pool.drain()))
            deliver(pool.drain())
        (run_dir / "emulator").mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "emulator" / "topologies.json",
                   {"topologies": links.log,
                    "support_checks_s": {f"{p}/{r}": t for (p, r), t in
                                         (support.check_secs.items() if support else ())},
                    "analysis_wait_s": round(pool.waited_s, 3),
                    "teardown_s": round(links.teardown_s, 3)})
    finally:
        pool.close(cancel=True)
        shutil.rmtree(scratch, ignore_errors=True)
        owner.unlink(missing_ok=True)
    return outcomes


def _free_case(env: CaseEnv) -> None:
    """Remove the case's served files once every analysis of it is delivered."""
    if env.submitted and env.pending <= 0:
        shutil.rmtree(env.www, ignore_errors=True)


def _run_case(case: Case, opts: MatrixOptions, run_dir: Path, scratch: Path,
              pairs: Sequence[tuple[str, str]], certs: Path, support: SupportCache | None,
              links: LinkCache, envs: dict[str, CaseEnv],
              submit: Callable[[Callable[[], Outcome], Case, str, str, int], None],
              drain: Callable[[], None]) -> None:
    """Every pair x repetition of ``case``; a topology only if some pair is not declined."""
    reps = opts.reps or case.repetitions
    rng = random.Random(f"{opts.seed}-{case.name}")
    www = scratch / f"www-{case.name}"
    names = make_files(case, www, rng)
    env = CaseEnv(case, None, www, names, certs, scratch, support)
    envs[case.name] = env
    if any(declined_verdict(env, s, c) is None for s, c in pairs):
        emu_dir = run_dir / "emulator" / case.name
        emu_dir.mkdir(parents=True, exist_ok=True)
        try:
            env.topo = links.get(case.link, emu_dir, case.name)
        except TopologyError as e:
            why = f"topology failed: {e}"
            for s, c in pairs:  # not-run outcomes: no analysis to wait for
                submit(lambda s=s, c=c: not_run(case, s, c, why), case, s, c, 0)  # type: ignore[misc]
            env.submitted = True
            _free_case(env)
            return
        if links.log and links.log[-1].get("reused"):
            write_json(emu_dir / "topology.json", links.log[-1])  # stats: in the builder's dir
    for s, c in pairs:
        for rep in range(1, reps + 1):
            d = run_dir / f"{s}_{c}" / case.name
            if reps > 1:
                d = d / str(rep)
            if case.measurement:
                drain()  # no analysis shares the CPU with a measured transfer
            env.pending += 1
            try:
                job = start_pair(env, s, c, rep, d, opts.seed * 1000 + rep)
            except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as e:
                job = failed_job(case, s, c, rep, e)
            submit(job, case, s, c, rep)
    env.submitted = True
    _free_case(env)


def failed_job(case: Case, s: str, c: str, rep: int, e: BaseException) -> Callable[[], Outcome]:
    return lambda: _runner_error(case, s, c, rep, e)


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
