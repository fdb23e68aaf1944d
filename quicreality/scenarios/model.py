"""Link impairment model, held as data.

Theory of operation
-------------------
A :class:`Link` is two independent :class:`Impairment` values, one per
direction: ``to_server`` (client → server) and ``to_client`` (server →
client).  Each backend (``netem`` argv generation in :mod:`.netem`, the
userspace emulator in :mod:`.emulator`) consumes exactly this model, so a
scenario file says *what* the link does and never *how*.

Per packet, in each direction, the stages are applied in this order (the same
order as ``sch_netem``)::

    drop list -> blackhole -> random loss -> Gilbert-Elliott loss -> duplicate -> corrupt
      -> drop-tail queue + serializer at ``rate_mbit`` -> delay (+ jitter)

Units: times in milliseconds (``*_ms``) or seconds (``*_s``), rates in
Mbit/s (10**6 bit/s), probabilities in ``[0, 1]``.  In TOML the
probabilities may also be written as percent strings (``loss = "1%"``).

TOML shape (see :func:`load_link`)::

    [link]                  # keys here apply to both directions
    delay_ms = 20
    rate_mbit = 50
    queue_bytes = 250_000
    loss = "1%"

    [link.to_client]        # optional per-direction overrides
    rate_mbit = 100

    [link.blackhole]        # optional; direction = both | to_client | to_server
    on_s = 5
    off_s = 2
    repeat = 1
    direction = "both"

    [link.gilbert_elliott]  # either p/r[/loss_bad/loss_good] or loss/mean_burst
    loss = 0.01
    mean_burst = 3

    [link.rebind]           # optional NAT rebinding (QIR rebind-port / rebind-addr)
    kind = "port"           # or "addr" (new source address and port)
    first_s = 1.0           # QIR: --first-rebind=1s
    interval_s = 5.0        # QIR: --rebind-freq=5s

A :class:`Rebind` makes the userspace emulator behave like a NAT in front of the client that
changes its mapping mid-run (:mod:`.emulator.rebind_stage` applies it): from ``first_s`` after
the schedule origin (emulator start, or re-arm before the workload), and every ``interval_s``
after that, the client's UDP source port is rewritten to a new one (``kind = "port"``) or its
source address and port (``kind = "addr"``, addresses from ``addresses``, all inside our
namespaces). Both directions are translated consistently; packets towards a mapping that was
replaced (the client's own address too, after the first rebinding) are dropped, as a NAT whose
old binding expired drops them. ``addresses`` defaults to
:data:`DEFAULT_REBIND_ADDRESSES`. Only the userspace backend can rebind (netem has no NAT stage).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

__all__ = [
    "DEFAULT_QUEUE_PACKETS",
    "DEFAULT_REBIND_ADDRESSES",
    "Blackhole",
    "GilbertElliott",
    "Impairment",
    "Link",
    "ModelError",
    "Rebind",
    "impairment_from_dict",
    "impairment_to_dict",
    "link_to_dict",
    "load_link",
    "with_fields",
]

#: Queue limit used when a rate is set but neither queue_packets nor queue_bytes is
#: (the same default as netem's ``limit``).
DEFAULT_QUEUE_PACKETS = 1000


class ModelError(ValueError):
    """An invalid impairment model; the message names the offending field."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"link model: {field_path}: {message}")
        self.field_path = field_path


def _check_prob(path: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        raise ModelError(path, f"must be a number in [0, 1], got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ModelError(path, f"must be in [0, 1] (a probability), got {value!r}")


def _check_nonneg(path: str, value: float, *, finite: bool = True) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        raise ModelError(path, f"must be a number >= 0, got {value!r}")
    if value < 0 or (finite and math.isinf(value)):
        raise ModelError(path, f"must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class GilbertElliott:
    """Gilbert-Elliott two-state bursty loss (netem ``loss gemodel p r 1-h 1-k``).

    The chain moves once per packet.  A packet is lost with probability
    ``loss_bad`` in the bad state and ``loss_good`` in the good state; the loss
    decision uses the state the packet found, then the state transitions
    (as in ``sch_netem``'s ``loss_gilb_ell``).

    Attributes:
        p: Probability good → bad per packet.
        r: Probability bad → good per packet (mean bad sojourn ``1/r`` packets).
        loss_bad: Loss probability in the bad state (netem ``1-h``).
        loss_good: Loss probability in the good state (netem ``1-k``).
    """

    p: float
    r: float
    loss_bad: float = 1.0
    loss_good: float = 0.0

    def validate(self, path: str = "gilbert_elliott") -> None:
        """Raise :class:`ModelError` if a parameter is out of range."""
        for name in ("p", "r", "loss_bad", "loss_good"):
            _check_prob(f"{path}.{name}", getattr(self, name))
        if self.p > 0 and self.r == 0:
            raise ModelError(f"{path}.r", "must be > 0 when p > 0 (the bad state would absorb)")

    @classmethod
    def from_loss_and_burst(cls, loss: float, mean_burst: float) -> GilbertElliott:
        """Simple Gilbert model with a given mean loss rate and mean burst length.

        With ``loss_bad = 1`` and ``loss_good = 0``: stationary P(bad) = p/(p+r) = loss
        and mean burst length = 1/r.

        Args:
            loss: Long-run loss probability in [0, 1).
            mean_burst: Mean number of consecutive losses, >= 1.
        """
        _check_prob("gilbert_elliott.loss", loss)
        if loss >= 1.0:
            raise ModelError("gilbert_elliott.loss", "must be < 1")
        if not isinstance(mean_burst, (int, float)) or mean_burst < 1:
            raise ModelError("gilbert_elliott.mean_burst", f"must be >= 1, got {mean_burst!r}")
        r = 1.0 / float(mean_burst)
        p = loss * r / (1.0 - loss)
        if p > 1.0:
            raise ModelError("gilbert_elliott", f"loss={loss} with mean_burst={mean_burst} needs p>1")
        return cls(p=p, r=r)

    @property
    def stationary_loss(self) -> float:
        """Long-run loss probability of the chain."""
        if self.p + self.r == 0:
            return self.loss_good
        pi_bad = self.p / (self.p + self.r)
        return pi_bad * self.loss_bad + (1.0 - pi_bad) * self.loss_good


@dataclass(frozen=True, slots=True)
class Blackhole:
    """On/off blackhole schedule (quic-network-simulator ``blackhole`` semantics).

    From the schedule origin (emulator start, or re-arm) the link is up for
    ``on_s``, then drops everything for ``off_s``; this cycle runs ``repeat``
    times, after which the link stays up.

    Attributes:
        on_s: Seconds the link works at the start of each cycle.
        off_s: Seconds the link drops everything in each cycle.
        repeat: Number of cycles (>= 1).
    """

    on_s: float
    off_s: float
    repeat: int = 1

    def validate(self, path: str = "blackhole") -> None:
        """Raise :class:`ModelError` if a parameter is out of range."""
        _check_nonneg(f"{path}.on_s", self.on_s)
        _check_nonneg(f"{path}.off_s", self.off_s)
        if self.off_s <= 0:
            raise ModelError(f"{path}.off_s", "must be > 0")
        if not isinstance(self.repeat, int) or isinstance(self.repeat, bool) or self.repeat < 1:
            raise ModelError(f"{path}.repeat", f"must be an integer >= 1, got {self.repeat!r}")

    def is_black(self, t: float) -> bool:
        """Whether the link is blackholed ``t`` seconds after the schedule origin."""
        if t < 0:
            return False
        period = self.on_s + self.off_s
        k = int(t // period)
        if k >= self.repeat:
            return False
        return t - k * period >= self.on_s

    def windows(self) -> list[tuple[float, float]]:
        """The blackhole intervals ``[(start_s, end_s), ...]`` relative to the origin."""
        period = self.on_s + self.off_s
        return [(k * period + self.on_s, (k + 1) * period) for k in range(self.repeat)]


@dataclass(frozen=True, slots=True)
class Impairment:
    """What one direction of the link does to packets.

    Attributes:
        delay_ms: One-way propagation delay added after the serializer.
        jitter_ms: Uniform jitter in ``[-jitter_ms, +jitter_ms]`` added to the delay
            (clamped so the total delay is >= 0).
        reorder: If False, jitter never reorders: release = max(previous release, t).
            If True, each packet's release time is independent, so jitter reorders.
        rate_mbit: Bottleneck rate in Mbit/s, or None for unlimited.
        queue_packets: Drop-tail queue limit in packets (waiting, excluding the one in
            service).  Mutually exclusive with ``queue_bytes``.
        queue_bytes: Drop-tail queue limit in bytes (all bytes in the queue, including
            the packet being serialized).
        loss: Independent random loss probability.
        loss_max_burst: If set, random loss never drops more than this many packets in a row
            (quic-network-simulator's ``drop-rate --burst``, which QIR's handshakeloss and
            transferloss use; the drop rate is then slightly below ``loss``).
        gilbert_elliott: Optional bursty loss (applied after ``loss``).
        duplicate: Probability a packet is sent twice (the copy also queues).
        corrupt: Probability one random bit after the IP header is flipped.
        corrupt_fix_checksum: If True, the UDP/TCP checksum is updated so the corrupted
            packet is delivered to the application (tests AEAD); if False (default,
            netem-like) the receiver's kernel drops it on checksum.
        blackhole: Optional on/off blackhole schedule.
        drop_packets: 1-based numbers of the packets to drop in this direction, counted from
            the emulator start or re-arm (quic-network-simulator's ``droplist``, which QIR's
            ``amplificationlimit`` uses); in TOML a list of integers.
        ecn_mark_threshold_ms: CE marking (RFC 3168 §5, a step AQM): a packet whose ECN field
            is ECT(0) or ECT(1) and that would wait longer than this in the queue is marked CE
            (and still queued; the drop-tail limit still applies). Needs ``rate_mbit``; None:
            never marks. Not-ECT packets are never marked.
    """

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    reorder: bool = False
    rate_mbit: float | None = None
    queue_packets: int | None = None
    queue_bytes: int | None = None
    loss: float = 0.0
    loss_max_burst: int | None = None
    gilbert_elliott: GilbertElliott | None = None
    duplicate: float = 0.0
    corrupt: float = 0.0
    corrupt_fix_checksum: bool = False
    blackhole: Blackhole | None = None
    drop_packets: tuple[int, ...] = ()
    ecn_mark_threshold_ms: float | None = None

    def validate(self, path: str = "link") -> None:
        """Raise :class:`ModelError` naming the first invalid field."""
        _check_nonneg(f"{path}.delay_ms", self.delay_ms)
        _check_nonneg(f"{path}.jitter_ms", self.jitter_ms)
        if not isinstance(self.reorder, bool):
            raise ModelError(f"{path}.reorder", f"must be a boolean, got {self.reorder!r}")
        if self.reorder and self.jitter_ms == 0:
            raise ModelError(f"{path}.reorder", "reorder=true needs jitter_ms > 0")
        if self.rate_mbit is not None:
            _check_nonneg(f"{path}.rate_mbit", self.rate_mbit)
            if self.rate_mbit <= 0:
                raise ModelError(f"{path}.rate_mbit", "must be > 0 (omit it for unlimited)")
        if self.queue_packets is not None and self.queue_bytes is not None:
            raise ModelError(f"{path}.queue_packets", "give queue_packets or queue_bytes, not both")
        for name in ("queue_packets", "queue_bytes"):
            v = getattr(self, name)
            if v is not None:
                if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                    raise ModelError(f"{path}.{name}", f"must be an integer >= 1, got {v!r}")
                if self.rate_mbit is None:
                    raise ModelError(f"{path}.{name}", "a queue limit needs rate_mbit")
        if self.queue_bytes is not None and self.queue_bytes < 1500:
            raise ModelError(f"{path}.queue_bytes", "must hold at least one 1500-byte packet")
        for name in ("loss", "duplicate", "corrupt"):
            _check_prob(f"{path}.{name}", getattr(self, name))
        if not isinstance(self.corrupt_fix_checksum, bool):
            raise ModelError(f"{path}.corrupt_fix_checksum", "must be a boolean")
        if self.ecn_mark_threshold_ms is not None:
            _check_nonneg(f"{path}.ecn_mark_threshold_ms", self.ecn_mark_threshold_ms)
            if self.rate_mbit is None:
                raise ModelError(f"{path}.ecn_mark_threshold_ms", "CE marking needs rate_mbit")
        if self.gilbert_elliott is not None:
            self.gilbert_elliott.validate(f"{path}.gilbert_elliott")
        if self.blackhole is not None:
            self.blackhole.validate(f"{path}.blackhole")
        if self.loss_max_burst is not None and (
                not isinstance(self.loss_max_burst, int) or isinstance(self.loss_max_burst, bool)
                or self.loss_max_burst < 1):
            raise ModelError(f"{path}.loss_max_burst",
                             f"must be an integer >= 1, got {self.loss_max_burst!r}")
        if not isinstance(self.drop_packets, tuple) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in self.drop_packets):
            raise ModelError(f"{path}.drop_packets",
                             f"must be a list of packet numbers >= 1, got {self.drop_packets!r}")

    @property
    def queue_limit_packets(self) -> int | None:
        """Effective packet limit (default applied when a rate is set), or None."""
        if self.rate_mbit is None or self.queue_bytes is not None:
            return None
        return self.queue_packets if self.queue_packets is not None else DEFAULT_QUEUE_PACKETS

    @property
    def expected_loss(self) -> float:
        """Loss probability from random + Gilbert-Elliott loss (not queue/blackhole)."""
        keep = 1.0 - self.loss
        if self.gilbert_elliott is not None:
            keep *= 1.0 - self.gilbert_elliott.stationary_loss
        return 1.0 - keep


#: Addresses a ``kind = "addr"`` rebinding cycles through by default: next to the client's
#: 10.99.1.2 in the topology's plan (10.0.0.0/8, inside our namespaces only).
DEFAULT_REBIND_ADDRESSES: tuple[str, ...] = ("10.99.1.3", "10.99.1.4", "10.99.1.5", "10.99.1.6")
_REBIND_KINDS = ("port", "addr")


@dataclass(frozen=True, slots=True)
class Rebind:
    """When and how the emulator's NAT changes the client's mapping.

    Attributes:
        kind: ``"port"`` (new source port) or ``"addr"`` (new source address and port).
        first_s: Seconds from the schedule origin to the first rebinding.
        interval_s: Seconds between rebindings after the first (0: only one).
        addresses: Source addresses for ``kind = "addr"``, used in turn.
    """

    kind: str = "port"
    first_s: float = 1.0
    interval_s: float = 5.0
    addresses: tuple[str, ...] = DEFAULT_REBIND_ADDRESSES

    def validate(self, path: str = "link.rebind") -> None:
        """Raise :class:`ModelError` if a parameter is out of range."""
        if self.kind not in _REBIND_KINDS:
            raise ModelError(f"{path}.kind", f"must be one of {list(_REBIND_KINDS)}, got {self.kind!r}")
        for name in ("first_s", "interval_s"):
            _check_nonneg(f"{path}.{name}", getattr(self, name))
        if self.kind == "addr" and not self.addresses:
            raise ModelError(f"{path}.addresses", "kind = 'addr' needs at least one address")
        for i, a in enumerate(self.addresses):
            try:
                ipaddress.ip_address(a)
            except ValueError:
                raise ModelError(f"{path}.addresses[{i}]", f"not an IP address: {a!r}") from None

    def epoch(self, t: float) -> int:
        """How many rebindings happened ``t`` seconds after the origin (0 before the first)."""
        if t < self.first_s:
            return 0
        if self.interval_s <= 0:
            return 1
        return 1 + int((t - self.first_s) // self.interval_s)


def rebind_from_dict(d: Any, path: str = "link.rebind") -> Rebind:
    """Build a validated :class:`Rebind` from a ``[link.rebind]`` table."""
    if not isinstance(d, Mapping):
        raise ModelError(path, "must be a table")
    allowed = {"kind", "first_s", "interval_s", "addresses"}
    for k in set(d) - allowed:
        raise ModelError(f"{path}.{k}", f"unknown key (allowed: {sorted(allowed)})")
    kw = dict(d)
    if "addresses" in kw:
        if not isinstance(kw["addresses"], (list, tuple)):
            raise ModelError(f"{path}.addresses", "must be a list of IP addresses")
        kw["addresses"] = tuple(str(a) for a in kw["addresses"])
    rebind = Rebind(**kw)
    rebind.validate(path)
    return rebind


def rebind_to_dict(rebind: Rebind) -> dict[str, Any]:
    """Plain-JSON form (inverse of :func:`rebind_from_dict`)."""
    return {"kind": rebind.kind, "first_s": rebind.first_s, "interval_s": rebind.interval_s,
            "addresses": list(rebind.addresses)}


@dataclass(frozen=True, slots=True)
class Link:
    """The impaired client⇄server link, one :class:`Impairment` per direction, and optionally
    a NAT rebinding schedule (:class:`~.rebind.Rebind`, userspace backend only)."""

    to_server: Impairment = field(default_factory=Impairment)
    to_client: Impairment = field(default_factory=Impairment)
    rebind: Rebind | None = None

    def validate(self) -> None:
        """Validate both directions (raises :class:`ModelError`) and the rebinding schedule."""
        self.to_server.validate("link.to_server")
        self.to_client.validate("link.to_client")
        if self.rebind is not None:
            self.rebind.validate()

    @classmethod
    def symmetric(cls, imp: Impairment) -> Link:
        """A link with the same impairment in both directions (validated)."""
        link = cls(to_server=imp, to_client=imp)
        link.validate()
        return link

    @property
    def base_rtt_ms(self) -> float:
        """Configured round-trip propagation delay (sum of the one-way delays)."""
        return self.to_server.delay_ms + self.to_client.delay_ms


# --------------------------------------------------------------------------- loading

_SCALAR_KEYS = {f.name for f in fields(Impairment)} - {"gilbert_elliott", "blackhole"}
_PROB_KEYS = {"loss", "duplicate", "corrupt"}
_DIRECTIONS = ("to_server", "to_client")


def _parse_prob(path: str, value: Any) -> float:
    if isinstance(value, str):
        s = value.strip()
        if not s.endswith("%"):
            raise ModelError(path, f"string values must be percent like '1%', got {value!r}")
        try:
            v = float(s[:-1]) / 100.0
        except ValueError:
            raise ModelError(path, f"not a percentage: {value!r}") from None
    else:
        v = value
    _check_prob(path, v)
    return float(v)


def _parse_ge(path: str, d: Any) -> GilbertElliott:
    if not isinstance(d, Mapping):
        raise ModelError(path, "must be a table")
    keys = set(d)
    if keys <= {"loss", "mean_burst"} and keys:
        if keys != {"loss", "mean_burst"}:
            raise ModelError(path, "the loss/mean_burst form needs both keys")
        return GilbertElliott.from_loss_and_burst(_parse_prob(f"{path}.loss", d["loss"]),
                                                  d["mean_burst"])
    allowed = {"p", "r", "loss_bad", "loss_good"}
    for k in keys - allowed:
        raise ModelError(f"{path}.{k}", f"unknown key (allowed: {sorted(allowed)} "
                                        "or loss + mean_burst)")
    if "p" not in d or "r" not in d:
        raise ModelError(path, "needs p and r (or loss and mean_burst)")
    kw = {k: _parse_prob(f"{path}.{k}", v) for k, v in d.items()}
    return GilbertElliott(**kw)


def _parse_blackhole(path: str, d: Any) -> tuple[Blackhole, str]:
    if not isinstance(d, Mapping):
        raise ModelError(path, "must be a table")
    allowed = {"on_s", "off_s", "repeat", "direction"}
    for k in set(d) - allowed:
        raise ModelError(f"{path}.{k}", f"unknown key (allowed: {sorted(allowed)})")
    for k in ("on_s", "off_s"):
        if k not in d:
            raise ModelError(f"{path}.{k}", "required")
    direction = d.get("direction", "both")
    if direction not in ("both", "to_client", "to_server"):
        raise ModelError(f"{path}.direction", f"must be both|to_client|to_server, got {direction!r}")
    bh = Blackhole(on_s=d["on_s"], off_s=d["off_s"], repeat=d.get("repeat", 1))
    bh.validate(path)
    return bh, direction


def impairment_from_dict(d: Mapping[str, Any], path: str = "link") -> Impairment:
    """Build one direction's :class:`Impairment` from a TOML-style table.

    Args:
        d: Keys are :class:`Impairment` field names; ``gilbert_elliott`` and
            ``blackhole`` are sub-tables (``blackhole.direction`` is not allowed here).
        path: Field path prefix used in error messages.

    Raises:
        ModelError: Unknown key or invalid value (the message names the field).
    """
    kw: dict[str, Any] = {}
    for k, v in d.items():
        p = f"{path}.{k}"
        if k in _PROB_KEYS:
            kw[k] = _parse_prob(p, v)
        elif k == "gilbert_elliott":
            kw[k] = _parse_ge(p, v)
        elif k == "blackhole":
            bh, _ = _parse_blackhole(p, v)
            if "direction" in v:
                raise ModelError(f"{p}.direction", "only allowed in the top-level [link.blackhole]")
            kw[k] = bh
        elif k == "drop_packets":
            kw[k] = tuple(v) if isinstance(v, list | tuple) else v
        elif k in _SCALAR_KEYS:
            kw[k] = v
        else:
            raise ModelError(
                p, f"unknown key (allowed: {sorted(_SCALAR_KEYS | {'gilbert_elliott', 'blackhole'})})")
    imp = Impairment(**kw)
    imp.validate(path)
    return imp


def load_link(d: Mapping[str, Any]) -> Link:
    """Load a :class:`Link` from the ``[link]`` table of a scenario TOML.

    Top-level keys apply to both directions; ``to_server`` / ``to_client``
    sub-tables override them key by key.  A top-level ``blackhole`` table may
    carry ``direction = "both" | "to_client" | "to_server"``.

    Args:
        d: The parsed ``[link]`` table (e.g. ``tomllib.loads(text)["link"]``).

    Returns:
        A validated :class:`Link`.

    Raises:
        ModelError: With the path of the offending field, e.g.
            ``link model: link.to_client.loss: must be in [0, 1] ...``.
    """
    if not isinstance(d, Mapping):
        raise ModelError("link", "must be a table")
    common = {k: v for k, v in d.items() if k not in (*_DIRECTIONS, "blackhole", "rebind")}
    per: dict[str, dict[str, Any]] = {}
    for name in _DIRECTIONS:
        sub = d.get(name, {})
        if not isinstance(sub, Mapping):
            raise ModelError(f"link.{name}", "must be a table")
        merged = dict(common)
        merged.update(sub)
        per[name] = merged
    if "blackhole" in d:
        bh, direction = _parse_blackhole("link.blackhole", d["blackhole"])
        for name in _DIRECTIONS:
            if direction in ("both", name):
                if "blackhole" in per[name]:
                    raise ModelError(f"link.{name}.blackhole", "also given in [link.blackhole]")
                per[name]["blackhole"] = {"on_s": bh.on_s, "off_s": bh.off_s, "repeat": bh.repeat}
    link = Link(
        to_server=impairment_from_dict(per["to_server"], "link.to_server"),
        to_client=impairment_from_dict(per["to_client"], "link.to_client"),
        rebind=rebind_from_dict(d["rebind"]) if d.get("rebind") is not None else None,
    )
    return link


def impairment_to_dict(imp: Impairment) -> dict[str, Any]:
    """Plain-JSON form of an :class:`Impairment` (defaults omitted); inverse of
    :func:`impairment_from_dict`."""
    out: dict[str, Any] = {}
    default = Impairment()
    for f in fields(Impairment):
        v = getattr(imp, f.name)
        if v == getattr(default, f.name):
            continue
        if isinstance(v, GilbertElliott):
            out[f.name] = {"p": v.p, "r": v.r, "loss_bad": v.loss_bad, "loss_good": v.loss_good}
        elif isinstance(v, Blackhole):
            out[f.name] = {"on_s": v.on_s, "off_s": v.off_s, "repeat": v.repeat}
        elif isinstance(v, tuple):
            out[f.name] = list(v)
        else:
            out[f.name] = v
    return out


def link_to_dict(link: Link) -> dict[str, Any]:
    """Plain-JSON form of a :class:`Link` (for manifests and the emulator config)."""
    out: dict[str, Any] = {"to_server": impairment_to_dict(link.to_server),
                           "to_client": impairment_to_dict(link.to_client)}
    if link.rebind is not None:
        out["rebind"] = rebind_to_dict(link.rebind)
    return out


def with_fields(imp: Impairment, **changes: Any) -> Impairment:
    """A validated copy of ``imp`` with some fields replaced."""
    new = replace(imp, **changes)
    new.validate()
    return new
