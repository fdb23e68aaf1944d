"""The scenario file's ``[censor]`` table: validation (errors name the field) and construction.

Shape (documented in docs/scenarios.md)::

    [censor]
    policies = ["gfw-2025", "fingerprint", "active-probe"]   # evaluation order; combinable
    flow_timeout_s = 60                                      # idle flow expiry

    [censor.gfw-2025]
    domains = ["blocked.quicreality.test"]
    residual_s = 180
    quirks = ["v1-only", "first-frame-crypto", "first-crypto-frame-only", "ignore-crypto-length"]

    [censor.sni-blocklist]
    domains = ["blocked.quicreality.test"]

    [[censor.fingerprint.rule]]
    name = "reality-session-id"
    feature = "session_id_len"
    equals = 32

    [censor.active-probe]
    ports = [443]
    delay_s = 1.0                                            # after the decision
    timeout_s = 1.5                                          # listening per probe
    [[censor.active-probe.when]]
    feature = "sni"
    in = ["www.quicreality.test"]

Without ``policies`` the policy tables present are used in file order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .core import Censor
from .policies import (
    GFW_QUIRKS,
    ActiveProbe,
    FeatureRule,
    Fingerprint,
    Gfw2025,
    Policy,
    SniBlocklist,
)

__all__ = ["POLICY_NAMES", "CensorConfigError", "build_censor", "load_censor"]

POLICY_NAMES = ("sni-blocklist", "gfw-2025", "fingerprint", "active-probe")
_TOP = {"policies", "flow_timeout_s", "max_inspect_packets", *POLICY_NAMES}
_KEYS = {
    "sni-blocklist": {"domains", "suffix", "residual_s", "max_packets"},
    "gfw-2025": {"domains", "residual_s", "quirks", "min_sport_ge_dport", "drop_trigger"},
    "fingerprint": {"rule", "residual_s", "max_packets"},
    "active-probe": {"when", "ports", "residual_s", "timeout_s", "delay_s", "max_packets"},
}
_RULE_KEYS = {"name", "feature", "equals", "not_equals", "in", "contains", "matches", "at_least",
              "at_most"}


class CensorConfigError(ValueError):
    """An invalid ``[censor]`` table; ``field_path`` names the field (``censor.gfw-2025.x``)."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"{field_path}: {message}")
        self.field_path = field_path
        self.message = message


def _table(path: str, v: Any, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        raise CensorConfigError(path, f"must be a table, got {type(v).__name__}")
    for k in v:
        if k not in allowed:
            raise CensorConfigError(f"{path}.{k}",
                                    f"unknown key (allowed: {', '.join(sorted(allowed))})")
    return v


def _num(path: str, v: Any, *, positive: bool = False) -> float:
    if (not isinstance(v, (int, float)) or isinstance(v, bool) or math.isnan(v) or math.isinf(v)
            or v < 0 or (positive and v == 0)):
        raise CensorConfigError(path, f"must be a {'positive' if positive else 'non-negative'} "
                                      f"number, got {v!r}")
    return float(v)


def _int(path: str, v: Any, lo: int = 1) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise CensorConfigError(path, f"must be an integer >= {lo}, got {v!r}")
    return v


def _bool(path: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise CensorConfigError(path, f"must be true or false, got {v!r}")
    return v


def _strs(path: str, v: Any, *, nonempty: bool = True) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(s, str) and s for s in v):
        raise CensorConfigError(path, "must be a list of non-empty strings")
    if nonempty and not v:
        raise CensorConfigError(path, "must not be empty")
    return tuple(v)


def _rules(path: str, v: Any) -> tuple[FeatureRule, ...]:
    if isinstance(v, Mapping):
        v = [v]
    if not isinstance(v, list) or not v:
        raise CensorConfigError(path, "must be one or more [[...]] rule tables")
    out = []
    for i, r in enumerate(v):
        p = f"{path}[{i}]"
        t = _table(p, r, _RULE_KEYS)
        if not isinstance(t.get("feature"), str) or not t["feature"]:
            raise CensorConfigError(f"{p}.feature", "required (a fingerprint feature name)")
        ops = tuple((k, t[k]) for k in ("equals", "not_equals", "in", "contains", "matches",
                                         "at_least", "at_most") if k in t)
        if not ops:
            raise CensorConfigError(p, "needs a condition: equals, not_equals, in, contains, "
                                       "matches, at_least or at_most")
        for k, want in ops:
            if k == "in" and not isinstance(want, list):
                raise CensorConfigError(f"{p}.in", "must be a list")
            if k in ("at_least", "at_most"):
                _num(f"{p}.{k}", want)
        name = t.get("name", t["feature"])
        if not isinstance(name, str):
            raise CensorConfigError(f"{p}.name", "must be a string")
        out.append(FeatureRule(name, t["feature"], ops))
    return tuple(out)


def _policy(name: str, t: Mapping[str, Any]) -> Policy:
    path = f"censor.{name}"
    _table(path, t, _KEYS[name])
    res = {"residual_s": _num(f"{path}.residual_s", t["residual_s"])} if "residual_s" in t else {}
    mp = {"max_packets": _int(f"{path}.max_packets", t["max_packets"])} if "max_packets" in t else {}
    if name == "sni-blocklist":
        if "domains" not in t:
            raise CensorConfigError(f"{path}.domains", "required (the blocked names)")
        kw: dict[str, Any] = {**res, **mp}
        if "suffix" in t:
            kw["suffix"] = _bool(f"{path}.suffix", t["suffix"])
        return SniBlocklist(_strs(f"{path}.domains", t["domains"]), **kw)
    if name == "gfw-2025":
        if "domains" not in t:
            raise CensorConfigError(f"{path}.domains", "required (the QUIC blocklist)")
        kw = dict(res)
        if "quirks" in t:
            q = _strs(f"{path}.quirks", t["quirks"], nonempty=False)
            for i, x in enumerate(q):
                if x not in GFW_QUIRKS:
                    raise CensorConfigError(f"{path}.quirks[{i}]", f"unknown quirk {x!r} "
                                            f"(known: {', '.join(GFW_QUIRKS)})")
            kw["quirks"] = q
        for k in ("min_sport_ge_dport", "drop_trigger"):
            if k in t:
                kw[k] = _bool(f"{path}.{k}", t[k])
        return Gfw2025(_strs(f"{path}.domains", t["domains"]), **kw)
    if name == "fingerprint":
        if "rule" not in t:
            raise CensorConfigError(f"{path}.rule", "required: at least one [[censor.fingerprint."
                                                    "rule]] table")
        return Fingerprint(_rules(f"{path}.rule", t["rule"]), **{**res, **mp})  # type: ignore[arg-type]
    kw = {**res, **mp}
    if "when" in t:
        kw["when"] = _rules(f"{path}.when", t["when"])
    if "ports" in t:
        ports = t["ports"]
        if not isinstance(ports, list) or not all(isinstance(p, int) and not isinstance(p, bool)
                                                  and 0 < p < 65536 for p in ports):
            raise CensorConfigError(f"{path}.ports", "must be a list of ports (1..65535)")
        kw["ports"] = tuple(ports)
    if "timeout_s" in t:
        kw["timeout_s"] = _num(f"{path}.timeout_s", t["timeout_s"], positive=True)
    if "delay_s" in t:
        kw["delay_s"] = _num(f"{path}.delay_s", t["delay_s"])
    return ActiveProbe(**kw)


def load_censor(d: Any) -> dict[str, Any]:
    """Validate a ``[censor]`` table; returns it as plain JSON data (what the emulator gets).

    Raises:
        CensorConfigError: naming the field, e.g. ``censor.policies[1]: unknown policy 'x'``.
    """
    t = _table("censor", d, _TOP)
    if "policies" in t:
        names = t["policies"]
        if not isinstance(names, list) or not names:
            raise CensorConfigError("censor.policies", "must be a non-empty list of policy names")
        for i, n in enumerate(names):
            if n not in POLICY_NAMES:
                raise CensorConfigError(f"censor.policies[{i}]", f"unknown policy {n!r} "
                                        f"(known: {', '.join(POLICY_NAMES)})")
        if len(set(names)) != len(names):
            raise CensorConfigError("censor.policies", "a policy is listed twice")
    else:
        names = [k for k in t if k in POLICY_NAMES]
        if not names:
            raise CensorConfigError("censor.policies", "no policy given (known: "
                                    f"{', '.join(POLICY_NAMES)})")
    for n in names:
        _policy(n, t.get(n, {}))
    for n in POLICY_NAMES:
        if n in t and n not in names:
            raise CensorConfigError(f"censor.{n}", "configured but not in censor.policies")
    if "flow_timeout_s" in t:
        _num("censor.flow_timeout_s", t["flow_timeout_s"], positive=True)
    if "max_inspect_packets" in t:
        _int("censor.max_inspect_packets", t["max_inspect_packets"])
    out: dict[str, Any] = {"policies": list(names)}
    for k, v in t.items():
        if k != "policies":
            out[k] = v
    return out


def build_censor(d: Mapping[str, Any], *, origin: float = 0.0) -> Censor:
    """A :class:`~.core.Censor` from a validated table (:func:`load_censor`)."""
    cfg = load_censor(d)
    policies = [_policy(n, cfg.get(n, {})) for n in cfg["policies"]]
    return Censor(policies, flow_timeout_s=float(cfg.get("flow_timeout_s", 60.0)),
                  max_inspect_packets=int(cfg.get("max_inspect_packets", 16)), origin=origin)


def probe_settings(d: Mapping[str, Any]) -> ActiveProbe | None:
    """The ``active-probe`` policy of a validated table, if configured."""
    cfg = load_censor(d)
    if "active-probe" not in cfg["policies"]:
        return None
    p = _policy("active-probe", cfg.get("active-probe", {}))
    assert isinstance(p, ActiveProbe)
    return p
