"""Scenario files: schema, loading, validation, ``--quick`` shrinking and the catalog.

Theory of operation
-------------------
A scenario is data: a TOML file in ``scenarios/`` (the catalog) or anywhere
else (``run PATH``).  :func:`load_scenario` turns it into a frozen
:class:`Scenario`; every error is a :class:`ScenarioError` naming the file and
the field (``scenarios/x.toml: workload[2].size: ...``).  The schema is
documented in ``docs/scenarios.md``; in short::

    [scenario]
    name = "lossy-wan"                 # defaults to the file stem
    description = "one line"
    reps = 3                           # per workload (workload.reps overrides)
    seed = 1                           # rep k of every workload uses seed*1000+k
    backend = "auto"                   # auto | userspace | netem

    [link]                             # quicreality.scenarios.model.load_link
    rate_mbit = 50
    delay_ms = 20

    [link_check]                       # optional
    enabled = true
    probe_s = 2.0

    [quick]                            # what --quick changes
    reps = 1
    max_size = "2MB"                   # downloads are capped at this
    max_seconds = 3                    # iperf3 durations are capped at this
    skip = ["some-workload"]

    [censor]                           # optional: an on-path censor (docs/scenarios.md);
    policies = ["gfw-2025"]            # needs the userspace emulator (chosen automatically)

    [[workload]]
    name = "curl-ours"
    kind = "download"                  # download | iperf3 | fallback | relay-iperf3 | chain
    client = "curl"
    server = "ours"
    size = "20MB"                      # 20_000_000 bytes; "10MiB" = 10 * 2**20
    congestion = "bbr"                 # sender's congestion control, if the peer has a knob
    timeout_s = 240
    baseline = false
    quick = { size = "1MB" }           # per-workload --quick override

:meth:`Scenario.quickened` applies ``[quick]``; :meth:`Scenario.only` keeps
the named workloads (``--only``).
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .censor.config import CensorConfigError, load_censor
from .model import Link, ModelError, link_to_dict, load_link
from .sweep import Sweep, SweepError, apply_point, parse_sweep, point_seed, unique_labels
from .transforms import apply_transform

__all__ = [
    "CATALOG_DIR",
    "KINDS",
    "LinkCheckSettings",
    "QuickSettings",
    "Scenario",
    "ScenarioError",
    "Workload",
    "catalog",
    "find_scenario",
    "load_scenario",
    "parse_scenario",
    "parse_size",
]

#: ``scenarios/`` at the repository root (next to the ``quicreality`` package).
CATALOG_DIR = Path(__file__).resolve().parents[2] / "scenarios"

#: Workload kinds and the peers allowed as (client, server) for each.
KINDS: Mapping[str, tuple[frozenset[str], frozenset[str]]] = {
    "download": (frozenset({"ours", "quicgo", "ngtcp2", "curl", "aioquic"}),
                 frozenset({"ours", "quicgo", "ngtcp2", "aioquic"})),
    "iperf3": (frozenset({"iperf3"}), frozenset({"iperf3"})),
    "fallback": (frozenset({"curl", "quicgo", "ngtcp2", "ours", "aioquic"}), frozenset({"ours"})),
    "relay-iperf3": (frozenset({"ours"}), frozenset({"ours"})),
    "censored": (frozenset({"ours", "curl", "quicgo", "chromium"}), frozenset({"ours"})),
    "chain": (frozenset({"iperf3"}), frozenset({"iperf3"})),
}
#: ``expect`` values of a censored workload (the check passes when the censor did that).
CENSOR_EXPECT = ("blocked", "passed")
#: Peers that can serve as the fallback target (in the target namespace).
TARGET_PEERS = frozenset({"quicgo", "ngtcp2", "aioquic"})
BACKENDS = ("auto", "userspace", "netem")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKMG]?i?B)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9,
               "KiB": 2**10, "kiB": 2**10, "MiB": 2**20, "GiB": 2**30}


class ScenarioError(ValueError):
    """An invalid scenario file; the message names the file and the field."""

    def __init__(self, source: str, field_path: str, message: str) -> None:
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{field_path}: {message}")
        self.source = source
        self.field_path = field_path


def parse_size(value: Any) -> int:
    """Bytes from an int or a string like ``"20MB"`` (10**6) or ``"10MiB"`` (2**20).

    Raises:
        ValueError: Not a non-negative size.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"must be >= 0, got {value}")
        return value
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m and m.group(2) in _SIZE_UNITS:
            n = float(m.group(1)) * _SIZE_UNITS[m.group(2)]
            if n == int(n):
                return int(n)
    raise ValueError(f"not a size (int bytes or '20MB', '10MiB', '500kB'): {value!r}")


@dataclass(frozen=True, slots=True)
class WorkloadQuick:
    """Per-workload ``--quick`` overrides (None: use the scenario's ``[quick]``)."""

    size_bytes: int | None = None
    seconds: float | None = None
    reps: int | None = None
    skip: bool = False


@dataclass(frozen=True, slots=True)
class Workload:
    """One measured thing: a peer pair doing one kind of transfer.

    Attributes:
        name: Unique in the scenario; a directory name in the results.
        kind: ``download`` (HTTP/3 GET of a file), ``iperf3`` (TCP, direct),
            ``fallback`` (a client reaches the target's page through the REALITY
            listener), ``relay-iperf3`` (iperf3 TCP through RAW -> QUIC_REALITY -> RAW).
        client: Client peer (``ours``, ``quicgo``, ``ngtcp2``, ``curl``, ``aioquic``, ``iperf3``).
        server: Server peer.
        description: One line for ``list`` and the summary.
        size_bytes: Download size (download).
        seconds: Test duration (iperf3, relay-iperf3).
        reverse: Server-to-client data (iperf3 ``-R``); downloads are always server→client.
        congestion: Congestion control of the data sender (``-C`` for iperf3, ``--cc``
            for ngtcp2, ``--congestion`` for ours); None = the peer's default.
        reality: Use REALITY (our client ``--reality-*``, our server ``--reality-config``).
        target: Peer serving the fallback target page (fallback, REALITY downloads).
        reps: Repetitions (None: the scenario's).
        timeout_s: Per-rep limit for the client; None derives one from the size/duration.
        baseline: A reference measurement (not our stack).
        min_goodput_mbit: If set, a rep whose wire goodput is lower fails its check.
        quick: ``--quick`` overrides.
        server_name: SNI the client sends (censored; default: the REALITY name, or none).
        carrier: REALITY carrier of our client (``ech`` | ``session_id``; censored).
        fingerprint: Our REALITY client's hello (``chrome`` | ``minimal``; censored).
        expect: What the censor should do (``blocked`` | ``passed``; censored): the check.
        hops: Relays in a ``chain`` (0: direct TCP, 1 or 2: REALITY relays; needs ``[link2]``).
        parallel: iperf3 ``-P`` streams (chain).
    """

    name: str
    kind: str
    client: str
    server: str
    description: str = ""
    size_bytes: int | None = None
    seconds: float | None = None
    reverse: bool = False
    congestion: str | None = None
    reality: bool = False
    target: str = "quicgo"
    reps: int | None = None
    timeout_s: float | None = None
    baseline: bool = False
    min_goodput_mbit: float | None = None
    quick: WorkloadQuick = field(default_factory=WorkloadQuick)
    server_name: str | None = None
    carrier: str | None = None
    fingerprint: str | None = None
    expect: str | None = None
    hops: int = 2
    parallel: int = 1

    @property
    def pair(self) -> str:
        """``<client>__<server>``: the results directory of this workload's peers."""
        return f"{self.client}__{self.server}"

    @property
    def requires(self) -> frozenset[str]:
        """Features of our stack this workload needs (``reality``, ``relay``)."""
        need = set()
        if self.reality or self.kind in ("fallback", "relay-iperf3") or (
                self.kind == "censored" and self.client == "chromium"):
            need.add("reality")
        if self.kind == "relay-iperf3" or (self.kind == "chain" and self.hops):
            need |= {"relay", "reality"}
        return frozenset(need)

    def effective_timeout_s(self) -> float:
        """Client time limit: explicit, or generous for ≥ 1 Mbit/s / the duration + 60 s."""
        if self.timeout_s is not None:
            return self.timeout_s
        if self.kind in ("iperf3", "relay-iperf3", "chain"):
            return (self.seconds or 10.0) + 60.0
        if self.size_bytes:
            return 60.0 + self.size_bytes * 8 / 1e6
        return 60.0


@dataclass(frozen=True, slots=True)
class QuickSettings:
    """What ``--quick`` changes scenario-wide."""

    reps: int = 1
    max_size_bytes: int | None = 2_000_000
    max_seconds: float | None = 3.0
    skip: tuple[str, ...] = ()
    link_probe_s: float = 1.0


@dataclass(frozen=True, slots=True)
class LinkCheckSettings:
    """The link check at the start of a run (see :mod:`.linkcheck`)."""

    enabled: bool = True
    probe_s: float = 2.0
    ping_count: int = 20


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario file.

    Attributes:
        name: Scenario name (results directory).
        description: One line for ``list``.
        link: The impaired link (client ⇄ server; client ⇄ middle in a chain).
        link2: The second impaired link of a chain topology (middle ⇄ server), or None.
        workloads: In run order.
        reps: Default repetitions per workload.
        seed: Base seed; rep ``k`` uses ``seed * 1000 + k`` in the emulator.
        backend: ``auto`` (netem if the kernel has it, else userspace), ``userspace``, ``netem``.
        censor: The validated ``[censor]`` table (None: no censor); needs the userspace emulator.
        link_check: Link check settings.
        quick_settings: What ``--quick`` changes.
        source: The file it was loaded from.
        data: The parsed TOML, for manifests ("the scenario as data").
        quick: Whether :meth:`quickened` was applied.
        sweep: The ``[sweep]`` table (:mod:`.sweep`), or None; :meth:`points` expands it.
        point: For one point of a sweep: ``{"sweep", "index", "params", "seed"}``; else None.
        transforms: ``quickened``/``only``/``with_reps``/``capped`` calls so far, replayed on
            the points.
        base_points: The sweep's points as parsed (before ``transforms``).
    """

    name: str
    description: str
    link: Link
    workloads: tuple[Workload, ...]
    reps: int = 3
    seed: int = 1
    backend: str = "auto"
    link_check: LinkCheckSettings = field(default_factory=LinkCheckSettings)
    quick_settings: QuickSettings = field(default_factory=QuickSettings)
    source: str = ""
    data: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    quick: bool = False
    sweep: Sweep | None = None
    point: Mapping[str, Any] | None = None
    transforms: tuple[tuple[Any, ...], ...] = ()
    base_points: tuple[Scenario, ...] = field(default=(), compare=False, repr=False)
    censor: Mapping[str, Any] | None = None
    link2: Link | None = None

    def reps_of(self, w: Workload) -> int:
        """Repetitions of workload ``w``."""
        return w.reps if w.reps is not None else self.reps

    def rep_seed(self, rep: int) -> int:
        """Emulator seed of repetition ``rep`` (1-based), the same for every workload."""
        return self.seed * 1000 + rep

    def quickened(self) -> Scenario:
        """A copy with ``[quick]`` applied: fewer reps, smaller sizes, shorter tests."""
        q = self.quick_settings
        out = []
        for w in self.workloads:
            if w.quick.skip or w.name in q.skip:
                continue
            size = w.size_bytes
            if size is not None:
                size = w.quick.size_bytes if w.quick.size_bytes is not None else (
                    min(size, q.max_size_bytes) if q.max_size_bytes else size)
            secs = w.seconds
            if secs is not None:
                secs = w.quick.seconds if w.quick.seconds is not None else (
                    min(secs, q.max_seconds) if q.max_seconds else secs)
            timeout = w.timeout_s
            if timeout is not None and w.size_bytes and size:
                # scaled down with the size, at least 60 s, never longer than the file's own
                timeout = min(timeout, max(60.0, timeout * size / w.size_bytes))
            out.append(replace(w, size_bytes=size, seconds=secs, timeout_s=timeout,
                               reps=w.quick.reps if w.quick.reps is not None else q.reps))
        lc = replace(self.link_check, probe_s=min(self.link_check.probe_s, q.link_probe_s))
        return replace(self, workloads=tuple(out), reps=q.reps, link_check=lc, quick=True,
                       transforms=(*self.transforms, ("quick",)))

    def only(self, names: list[str]) -> Scenario:
        """A copy keeping the named workloads (order of the file).

        Raises:
            ScenarioError: A name is not a workload of this scenario.
        """
        known = {w.name for w in self.workloads}
        for n in names:
            if n not in known:
                raise ScenarioError(self.source, "--only",
                                    f"no workload {n!r} (have: {', '.join(sorted(known))})")
        return replace(self, workloads=tuple(w for w in self.workloads if w.name in names),
                       transforms=(*self.transforms, ("only", tuple(names))))

    def with_reps(self, reps: int) -> Scenario:
        """A copy where every workload runs ``reps`` times."""
        return replace(self, reps=reps,
                       workloads=tuple(replace(w, reps=None) for w in self.workloads),
                       transforms=(*self.transforms, ("reps", reps)))

    def points(self) -> tuple[Scenario, ...]:
        """The scenarios to run: ``(self,)``, or one per point of the sweep (``--quick``: the
        ``[quick.sweep]`` subset), each with its own seed (:func:`.sweep.point_seed` of this
        scenario's base seed) and this scenario's ``transforms`` replayed (:mod:`.transforms`)."""
        if self.sweep is None:
            return (self,)
        combos = self.sweep.combos(quick=self.quick)
        out = []
        for bp in self.base_points:
            assert bp.point is not None
            params = bp.point["params"]
            if params not in combos:
                continue
            seed = point_seed(self.seed, params)
            p = replace(bp, seed=seed, point={**bp.point, "seed": seed})
            for op in self.transforms:
                p = apply_transform(p, op)
            out.append(p)
        return tuple(out)

    def total_reps(self) -> int:
        """Repetitions of all workloads of all points (the units of a run)."""
        return sum(p.reps_of(w) for p in self.points() for w in p.workloads)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: the file's data plus the effective (quickened/filtered) workloads."""
        return {
            "name": self.name, "description": self.description, "source": self.source,
            "reps": self.reps, "seed": self.seed, "backend": self.backend, "quick": self.quick,
            "link": link_to_dict(self.link),
            **({"link2": link_to_dict(self.link2)} if self.link2 is not None else {}),
            "link_check": {"enabled": self.link_check.enabled, "probe_s": self.link_check.probe_s,
                           "ping_count": self.link_check.ping_count},
            "workloads": [_workload_dict(w) for w in self.workloads],
            "censor": dict(self.censor) if self.censor is not None else None,
            "file": dict(self.data),
            **({"sweep": self.sweep.to_dict()} if self.sweep is not None else {}),
            **({"point": dict(self.point)} if self.point is not None else {}),
        }


def _workload_dict(w: Workload) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for f in w.__dataclass_fields__:
        v = getattr(w, f)
        if f == "quick":
            continue
        d[f] = v
    d["pair"] = w.pair
    return d


# --------------------------------------------------------------------------- parsing

_SCENARIO_KEYS = {"name", "description", "reps", "seed", "backend"}
_TOP_KEYS = {"scenario", "link", "link2", "link_check", "quick", "workload", "sweep", "censor"}
_WORKLOAD_KEYS = {"name", "kind", "client", "server", "description", "size", "seconds", "reverse",
                  "congestion", "reality", "target", "reps", "timeout_s", "baseline",
                  "min_goodput_mbit", "quick", "server_name", "carrier", "fingerprint", "expect",
                  "hops", "parallel"}
_WQUICK_KEYS = {"size", "seconds", "reps", "skip"}
_QUICK_KEYS = {"reps", "max_size", "max_seconds", "skip", "link_probe_s", "sweep"}
_CHECK_KEYS = {"enabled", "probe_s", "ping_count"}


class _P:
    """Field-path aware accessors for one file."""

    def __init__(self, source: str) -> None:
        self.source = source

    def err(self, path: str, msg: str) -> ScenarioError:
        return ScenarioError(self.source, path, msg)

    def table(self, path: str, v: Any, allowed: set[str]) -> Mapping[str, Any]:
        if not isinstance(v, Mapping):
            raise self.err(path, f"must be a table, got {type(v).__name__}")
        for k in v:
            if k not in allowed:
                raise self.err(f"{path}.{k}" if path else k,
                               f"unknown key (allowed: {', '.join(sorted(allowed))})")
        return v

    def str_(self, path: str, v: Any) -> str:
        if not isinstance(v, str):
            raise self.err(path, f"must be a string, got {v!r}")
        return v

    def int_(self, path: str, v: Any, lo: int = 0) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise self.err(path, f"must be an integer >= {lo}, got {v!r}")
        return v

    def num(self, path: str, v: Any, *, positive: bool = True) -> float:
        if (not isinstance(v, (int, float)) or isinstance(v, bool) or math.isnan(v)
                or math.isinf(v) or (positive and v <= 0) or v < 0):
            raise self.err(path, f"must be a {'positive' if positive else 'non-negative'} "
                                 f"number, got {v!r}")
        return float(v)

    def bool_(self, path: str, v: Any) -> bool:
        if not isinstance(v, bool):
            raise self.err(path, f"must be true or false, got {v!r}")
        return v

    def size(self, path: str, v: Any) -> int:
        try:
            n = parse_size(v)
        except ValueError as e:
            raise self.err(path, str(e)) from None
        if n < 1:
            raise self.err(path, "must be at least 1 byte")
        return n

    def name(self, path: str, v: Any) -> str:
        s = self.str_(path, v)
        if not _NAME_RE.match(s):
            raise self.err(path, f"must match {_NAME_RE.pattern} (a directory name), got {s!r}")
        return s


def _parse_workload(p: _P, i: int, d: Any) -> Workload:
    path = f"workload[{i}]"
    t = p.table(path, d, _WORKLOAD_KEYS)
    for req in ("name", "kind", "client", "server"):
        if req not in t:
            raise p.err(f"{path}.{req}", "required")
    name = p.name(f"{path}.name", t["name"])
    kind = p.str_(f"{path}.kind", t["kind"])
    if kind not in KINDS:
        raise p.err(f"{path}.kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    clients, servers = KINDS[kind]
    client = p.str_(f"{path}.client", t["client"])
    server = p.str_(f"{path}.server", t["server"])
    if client not in clients:
        raise p.err(f"{path}.client", f"{kind} clients: {', '.join(sorted(clients))}; got {client!r}")
    if server not in servers:
        raise p.err(f"{path}.server", f"{kind} servers: {', '.join(sorted(servers))}; got {server!r}")
    kw: dict[str, Any] = {"name": name, "kind": kind, "client": client, "server": server}
    if "description" in t:
        kw["description"] = p.str_(f"{path}.description", t["description"])
    if "size" in t:
        kw["size_bytes"] = p.size(f"{path}.size", t["size"])
    if "seconds" in t:
        kw["seconds"] = p.num(f"{path}.seconds", t["seconds"])
    for key in ("reverse", "reality", "baseline"):
        if key in t:
            kw[key] = p.bool_(f"{path}.{key}", t[key])
    if "congestion" in t:
        kw["congestion"] = p.name(f"{path}.congestion", t["congestion"])
    if "target" in t:
        target = p.str_(f"{path}.target", t["target"])
        if target not in TARGET_PEERS:
            raise p.err(f"{path}.target", f"must be one of {', '.join(sorted(TARGET_PEERS))}")
        kw["target"] = target
    if "reps" in t:
        kw["reps"] = p.int_(f"{path}.reps", t["reps"], 1)
    if "timeout_s" in t:
        kw["timeout_s"] = p.num(f"{path}.timeout_s", t["timeout_s"])
    if "min_goodput_mbit" in t:
        kw["min_goodput_mbit"] = p.num(f"{path}.min_goodput_mbit", t["min_goodput_mbit"],
                                       positive=False)
    if "quick" in t:
        q = p.table(f"{path}.quick", t["quick"], _WQUICK_KEYS)
        kw["quick"] = WorkloadQuick(
            size_bytes=p.size(f"{path}.quick.size", q["size"]) if "size" in q else None,
            seconds=p.num(f"{path}.quick.seconds", q["seconds"]) if "seconds" in q else None,
            reps=p.int_(f"{path}.quick.reps", q["reps"], 1) if "reps" in q else None,
            skip=p.bool_(f"{path}.quick.skip", q["skip"]) if "skip" in q else False)
    if "server_name" in t:
        kw["server_name"] = p.str_(f"{path}.server_name", t["server_name"])
    for key, allowed in (("carrier", ("ech", "session_id")), ("fingerprint", ("chrome", "minimal")),
                         ("expect", CENSOR_EXPECT)):
        if key in t:
            if kind != "censored":
                raise p.err(f"{path}.{key}", "only used by kind = \"censored\"")
            v = p.str_(f"{path}.{key}", t[key])
            if v not in allowed:
                raise p.err(f"{path}.{key}", f"must be one of {', '.join(allowed)}, got {v!r}")
            kw[key] = v
    for key, lo, hi in (("hops", 0, 2), ("parallel", 1, 128)):
        if key in t and (kind != "chain" or p.int_(f"{path}.{key}", t[key], lo) > hi):
            raise p.err(f"{path}.{key}", f'kind = "chain" only, {lo}..{hi}; got {t[key]!r}')
        kw[key] = t.get(key, kw.get(key, 2 if key == "hops" else 1))
    w = Workload(**kw)
    if kind == "censored" and (w.carrier or w.fingerprint) and not w.reality:
        raise p.err(f"{path}.carrier" if w.carrier else f"{path}.fingerprint",
                    "carrier and fingerprint need reality = true")
    if kind == "censored" and w.size_bytes is None:
        raise p.err(f"{path}.size", "required for a censored download")
    if kind == "download" and w.size_bytes is None:
        raise p.err(f"{path}.size", "required for a download")
    if kind in ("iperf3", "relay-iperf3", "chain") and w.seconds is None:
        raise p.err(f"{path}.seconds", f"required for {kind}")
    if kind == "download" and client == "ngtcp2" and w.reality:
        raise p.err(f"{path}.reality", "only our client speaks REALITY")
    if w.reality and (client != "ours" or server != "ours"):
        raise p.err(f"{path}.reality", "REALITY downloads need client = server = \"ours\"")
    if kind not in ("download", "iperf3", "censored") and w.size_bytes is None and "size" in t:
        raise p.err(f"{path}.size", f"not used by {kind}")
    return w


def parse_scenario(doc: Mapping[str, Any], source: str = "", default_name: str = "") -> Scenario:
    """Build a :class:`Scenario` from parsed TOML.

    Raises:
        ScenarioError: Naming ``source`` and the offending field.
    """
    p = _P(source)
    p.table("", doc, _TOP_KEYS)
    if "sweep" in doc:
        return _parse_sweep_scenario(doc, source, default_name)
    if isinstance(doc.get("quick"), Mapping) and "sweep" in doc["quick"]:
        raise p.err("quick.sweep", "there is no [sweep] table to shrink")
    sc = p.table("scenario", doc.get("scenario", {}), _SCENARIO_KEYS)
    name = p.name("scenario.name", sc.get("name", default_name))
    if not name:
        raise p.err("scenario.name", "required")
    backend = p.str_("scenario.backend", sc.get("backend", "auto"))
    if backend not in BACKENDS:
        raise p.err("scenario.backend", f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if "link" not in doc:
        raise p.err("link", "required (the impaired link; see docs/link-emulation.md)")
    try:
        link = load_link(doc["link"])
    except ModelError as e:
        raise ScenarioError(source, e.field_path, str(e).split(": ", 2)[-1]) from None
    lc = p.table("link_check", doc.get("link_check", {}), _CHECK_KEYS)
    link_check = LinkCheckSettings(
        enabled=p.bool_("link_check.enabled", lc.get("enabled", True)),
        probe_s=p.num("link_check.probe_s", lc.get("probe_s", 2.0)),
        ping_count=p.int_("link_check.ping_count", lc.get("ping_count", 20), 3))
    q = p.table("quick", doc.get("quick", {}), _QUICK_KEYS)
    skip = q.get("skip", [])
    if not isinstance(skip, list) or not all(isinstance(s, str) for s in skip):
        raise p.err("quick.skip", "must be a list of workload names")
    quick = QuickSettings(
        reps=p.int_("quick.reps", q.get("reps", 1), 1),
        max_size_bytes=p.size("quick.max_size", q["max_size"]) if "max_size" in q else 2_000_000,
        max_seconds=p.num("quick.max_seconds", q["max_seconds"]) if "max_seconds" in q else 3.0,
        skip=tuple(skip),
        link_probe_s=p.num("quick.link_probe_s", q.get("link_probe_s", 1.0)))
    raw_w = doc.get("workload", [])
    if not isinstance(raw_w, list) or not raw_w:
        raise p.err("workload", "at least one [[workload]] table is required")
    workloads = tuple(_parse_workload(p, i, d) for i, d in enumerate(raw_w))
    seen: set[str] = set()
    for i, w in enumerate(workloads):
        if w.name in seen:
            raise p.err(f"workload[{i}].name", f"duplicate workload name {w.name!r}")
        seen.add(w.name)
    for s in quick.skip:
        if s not in seen:
            raise p.err("quick.skip", f"no workload named {s!r}")
    censor = None
    if "censor" in doc:
        try:
            censor = load_censor(doc["censor"])
        except CensorConfigError as e:
            raise p.err(e.field_path, e.message) from None
        if backend == "netem":
            raise p.err("scenario.backend", "the [censor] runs in the userspace emulator; netem "
                                            "cannot inspect packets (use auto or userspace)")
    elif any(w.kind == "censored" for w in workloads):
        raise p.err("censor", "required by the censored workloads (the on-path censor)")
    link2 = None
    if "link2" in doc:
        try:
            link2 = load_link(doc["link2"])
        except ModelError as e:
            raise ScenarioError(source, "link2", str(e)) from None
        if censor is not None or any(w.kind != "chain" for w in workloads):
            raise p.err("link2", "the chain topology runs only kind = \"chain\" workloads")
    elif any(w.kind == "chain" for w in workloads):
        raise p.err("link2", "required by the chain workloads (the middle ⇄ server link)")
    return Scenario(
        name=name, description=p.str_("scenario.description", sc.get("description", "")),
        link=link, workloads=workloads, reps=p.int_("scenario.reps", sc.get("reps", 3), 1),
        seed=p.int_("scenario.seed", sc.get("seed", 1), 0), backend=backend,
        link_check=link_check, quick_settings=quick, source=source, data=doc, censor=censor,
        link2=link2)


def _parse_sweep_scenario(doc: Mapping[str, Any], source: str, default_name: str) -> Scenario:
    """A scenario with a ``[sweep]`` table: every value and every point validated."""
    try:
        sweep = parse_sweep(doc)
    except SweepError as e:
        raise ScenarioError(source, e.field_path, e.message) from None
    base = parse_scenario(apply_point(doc, {}), source, default_name)
    for key, vals in zip(sweep.keys, sweep.values, strict=True):
        for i, v in enumerate(vals):  # each value alone: the error names sweep.<key>[i]
            try:
                parse_scenario(apply_point(doc, {key: v}), source, default_name)
            except ScenarioError as e:
                prefix = (f"{e.source}: " if e.source else "") + f"{e.field_path}: "
                msg = str(e)[len(prefix):]
                raise ScenarioError(source, f"sweep.{key}[{i}]",
                                    f"{v!r}: {e.field_path}: {msg}") from None
    combos = sweep.combos()
    points = []
    for i, (params, label) in enumerate(zip(combos, unique_labels(combos), strict=True)):
        pdoc = apply_point(doc, params)
        try:
            ps = parse_scenario(pdoc, source, default_name)
        except ScenarioError as e:
            raise ScenarioError(source, "sweep", f"point {params}: {e}") from None
        seed = point_seed(base.seed, params)
        points.append(replace(ps, name=f"{base.name}.{label}", seed=seed, data=pdoc,
                              point={"sweep": base.name, "index": i, "label": label,
                                     "params": params, "seed": seed}))
    return replace(base, sweep=sweep, data=doc, base_points=tuple(points))


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate one scenario file.

    Raises:
        ScenarioError: Unreadable file, bad TOML, or an invalid field.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ScenarioError(str(p), "file", f"cannot read: {e.strerror}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(str(p), "toml", str(e)) from None
    return parse_scenario(doc, source=str(p), default_name=p.stem)


def catalog(directory: Path = CATALOG_DIR) -> list[Scenario]:
    """Every scenario in the catalog directory, sorted by name."""
    return sorted((load_scenario(f) for f in sorted(directory.glob("*.toml"))),
                  key=lambda s: s.name)


def find_scenario(name_or_path: str, directory: Path = CATALOG_DIR) -> Scenario:
    """A catalog scenario by name, or a scenario file by path.

    Raises:
        ScenarioError: Neither a catalog name nor an existing file.
    """
    p = Path(name_or_path)
    if p.suffix == ".toml" or "/" in name_or_path:
        return load_scenario(p)
    f = directory / f"{name_or_path}.toml"
    if f.exists():
        return load_scenario(f)
    names = sorted(x.stem for x in directory.glob("*.toml"))
    raise ScenarioError("", "scenario", f"no scenario {name_or_path!r} in {directory} "
                                        f"(have: {', '.join(names) or 'none'}); or give a path")
