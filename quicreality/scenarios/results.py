"""The results layout, manifests, checks and tidy samples of a run.

Layout (``docs/scenarios.md``)::

    <results>/runs/<UTC time>-<git sha>/
      run.json                     # the run: scenario as data, git, kernel, tools, link check
      summary.json, summary.txt    # the final table (also printed)
      <scenario>/<workload>/<client>__<server>/rep-<n>/
        manifest.json              # enough to rerun this rep: seed, argv, versions, link
        check.json                 # {"ok", "reason", "details"}
        samples.jsonl              # tidy rows, see SAMPLE_FIELDS
        client.pcap server.pcap    # both sides of the impaired link
        keys.log client.pcapng     # merged key log; client capture with the keys injected
        qlog/{client,server}/      # every endpoint's qlog
        client.stdout client.stderr server.stdout server.stderr ...

A sample row is ``{"run", "scenario", "workload", "client", "server", "rep",
"metric", "value", "unit", "source"}`` where ``source`` says where the value
comes from: ``wire`` (pcap), ``qlog``, ``peer`` (what the peer printed),
``emulator`` (its counters), ``censor`` (the censor's decision log) or ``runner``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "SAMPLE_FIELDS",
    "Check",
    "Sample",
    "git_info",
    "host_info",
    "load_average",
    "new_run_dir",
    "read_samples",
    "rep_dir",
    "tool_versions",
    "validate_sample",
    "write_json",
    "write_samples",
]

#: Keys of every samples.jsonl row, in order.
SAMPLE_FIELDS: tuple[str, ...] = ("run", "scenario", "workload", "client", "server", "rep",
                                  "metric", "value", "unit", "source")
SOURCES = frozenset({"wire", "qlog", "peer", "emulator", "censor", "runner"})
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Sample:
    """One tidy measurement row (see the module docstring)."""

    run: str
    scenario: str
    workload: str
    client: str
    server: str
    rep: int
    metric: str
    value: float
    unit: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        """The row as a dict in :data:`SAMPLE_FIELDS` order."""
        return {k: getattr(self, k) for k in SAMPLE_FIELDS}


def validate_sample(row: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first bad key of a samples.jsonl row."""
    keys = tuple(row)
    if keys != SAMPLE_FIELDS:
        raise ValueError(f"sample keys {keys} != {SAMPLE_FIELDS}")
    for k in ("run", "scenario", "workload", "client", "server", "metric", "unit", "source"):
        if not isinstance(row[k], str) or not row[k]:
            raise ValueError(f"sample.{k}: must be a non-empty string, got {row[k]!r}")
    if not isinstance(row["rep"], int) or isinstance(row["rep"], bool) or row["rep"] < 1:
        raise ValueError(f"sample.rep: must be an integer >= 1, got {row['rep']!r}")
    v = row["value"]
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        raise ValueError(f"sample.value: must be a finite number, got {v!r}")
    if row["source"] not in SOURCES:
        raise ValueError(f"sample.source: must be one of {sorted(SOURCES)}, got {row['source']!r}")


def write_samples(path: str | Path, samples: Iterable[Sample]) -> int:
    """Write samples.jsonl (validated); returns the number of rows."""
    n = 0
    with open(path, "w") as f:
        for s in samples:
            d = s.to_dict()
            validate_sample(d)
            f.write(json.dumps(d) + "\n")
            n += 1
    return n


def read_samples(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a samples.jsonl file (validated)."""
    out = []
    with open(path) as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                validate_sample(row)
                out.append(row)
    return out


@dataclass(frozen=True, slots=True)
class Check:
    """The verdict of one repetition (check.json)."""

    ok: bool
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        return {"ok": self.ok, "reason": self.reason, "details": dict(self.details)}


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)
    return repr(o)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON (paths, sets and dataclasses converted)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, default=_json_default)
        f.write("\n")
    os.replace(tmp, path)


def git_info(repo: Path = REPO_ROOT) -> dict[str, Any]:
    """``{"sha", "short", "dirty", "describe"}`` of the checkout (``unknown`` outside git)."""
    def git(*args: str) -> str:
        r = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                           timeout=10, check=False)
        return r.stdout.strip() if r.returncode == 0 else ""

    sha = git("rev-parse", "HEAD") or "unknown"
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"sha": sha, "short": sha[:7] if sha != "unknown" else "nogit",
            "dirty": bool(status), "dirty_files": status.splitlines()[:50]}


def utc_stamp(now: _dt.datetime | None = None) -> str:
    """``20261125T151200Z``."""
    t = now or _dt.datetime.now(_dt.UTC)
    return t.strftime("%Y%m%dT%H%M%SZ")


def new_run_dir(results_root: str | Path, git_short: str, now: _dt.datetime | None = None) -> Path:
    """Create ``<results_root>/runs/<UTC time>-<git sha>`` (``-2``, ``-3``... if taken)."""
    base = Path(results_root) / "runs" / f"{utc_stamp(now)}-{git_short}"
    path, n = base, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")


_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def rep_dir(run_dir: Path, scenario: str, workload: str, client: str, server: str,
            rep: int) -> Path:
    """``<run>/<scenario>/<workload>/<client>__<server>/rep-<n>`` (created)."""
    for what, v in (("scenario", scenario), ("workload", workload), ("client", client),
                    ("server", server)):
        if not _SAFE.match(v):
            raise ValueError(f"{what} {v!r} is not a safe directory name")
    d = run_dir / scenario / workload / f"{client}__{server}" / f"rep-{rep}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _first_line(argv: list[str], pattern: str | None = None) -> str | None:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (r.stdout or "") + (r.stderr or "")
    for line in text.splitlines():
        if pattern is None or re.search(pattern, line):
            return line.strip()
    return None


def _dpkg_version(pkg: str) -> str | None:
    v = _first_line(["dpkg-query", "-W", "-f", "${Version}", pkg])
    return v if v and "no packages" not in v.lower() else None


def tool_versions() -> dict[str, Any]:
    """Versions of the peers and tools a run may use (None where absent)."""
    from .peers import paths

    out: dict[str, Any] = {"python": sys.version.split()[0], "kernel": platform.release()}

    def tool(name: str, fn: Any, args: list[str], pattern: str | None = None) -> None:
        try:
            exe = str(fn())
        except Exception:  # noqa: BLE001 - a missing tool is just recorded as absent
            out[name] = None
            return
        out[name] = _first_line([exe, *args], pattern)

    tool("curl", paths.curl_h3, ["-V"], r"^curl ")
    tool("iperf3", paths.iperf3, ["--version"], r"^iperf")
    tool("tcpdump", paths.tcpdump, ["--version"], r"tcpdump version")
    tool("tshark", paths.tshark, ["--version"], r"^TShark")
    out["ngtcp2"] = _dpkg_version("ngtcp2-client")
    out["quic-go"] = _dpkg_version("golang-github-lucas-clemente-quic-go-dev")
    try:
        import aioquic

        out["aioquic"] = getattr(aioquic, "__version__", None)
    except ImportError:
        out["aioquic"] = None
    with contextlib.suppress(OSError):
        out["qrgo"] = str(paths.qrgo())
    from ..build import mode_line

    # our stack's form: compiled (mypyc) or pure Python, and why; child processes inherit it
    out["quicreality_build"] = mode_line().removeprefix("mode: ")
    return out


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def host_info() -> dict[str, Any]:
    """Where a repetition ran: hostname, kernel, machine, CPU model, cores, memory, Python.

    The same keys as :func:`quicreality.analysis.regression.host_description`, so
    :func:`~quicreality.analysis.baselines.host_class` (machine, CPU model, cores) applies to
    a manifest's ``host`` as to a baseline's; manifests add ``load_before``/``load_after``.
    """
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {"hostname": platform.node(), "kernel": platform.release(),
            "machine": platform.machine(), "cpu_model": cpu, "cpus": os.cpu_count(),
            "mem_total_kb": mem_kb, "python": platform.python_version()}
