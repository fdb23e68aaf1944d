"""Profiles of one client (or server) over several flows, and the differences between two.

A :class:`Profile` merges the feature dicts of several flows of the same peer: a feature with
one value in every flow keeps it; one that takes several values is *varying* and keeps the set of
values seen. Two derived features say whether a peer permutes an order per connection:
``client.order_permuted.extensions`` and ``client.order_permuted.tp_ids`` are ``True`` when the
order differed between flows over the same set, ``False`` when it never did over two or more
flows, and ``None`` (unknown) for a single flow.

:func:`compare` lists the differing features. With ``ignore_random`` (the default):

* features that are random by design (:data:`RANDOM_FEATURES`, e.g. Chromium's per-connection
  CRYPTO frame split and PING/PADDING placement) are skipped;
* an order that either side permutes is compared through its sorted twin only (the
  ``order permuted`` feature itself is compared when both sides know it);
* a varying feature matches a constant that is one of its observed values, and another varying
  feature.

Sub-features that one side lacks because the feature itself differs (``client.tls.ech.kdf`` when
only one side sends ECH) are not listed after ``client.tls.ech``.

``ignore_random=False`` compares every feature literally (varying values as sets).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "PERMUTABLE",
    "RANDOM_FEATURES",
    "Difference",
    "Profile",
    "Varying",
    "compare",
    "profile",
]

#: ordered feature -> its sorted twin; a peer may permute the former per connection
PERMUTABLE: Mapping[str, str] = {
    "client.tls.extensions": "client.tls.extensions_sorted",
    "client.quic.tp_ids": "client.quic.tp_ids_sorted",
}
_PERMUTED_NAME = {
    "client.tls.extensions": "client.order_permuted.extensions",
    "client.quic.tp_ids": "client.order_permuted.tp_ids",
}
#: features that are random per connection by design; skipped by ``compare(ignore_random=True)``
RANDOM_FEATURES: frozenset[str] = frozenset({
    "client.flight.frame_layout",
    "client.flight.crypto_frames",
    "client.flight.ping_frames",
    "client.flight.gaps_ms",  # timing: loopback scheduling, not the peer's shape
    "server.flight.gaps_ms",
    # Chromium draws these per connection: the ECH GREASE payload size, the GREASE transport
    # parameter's length, the position of the GREASE version in version_information, and the
    # sizes that follow from them (the *_stable twins take the random parts out)
    "client.tls.ech.payload_len",
    "client.quic.tp.GREASE.len",
    "client.quic.tp.GREASE.bytes",
    "client.quic.tp.version_information.others",
    "client.tls.handshake_len",
    "client.tls.extension_lengths",
})


def _key(v: Any) -> str:
    return json.dumps(v, sort_keys=True)


@dataclass(frozen=True, slots=True)
class Varying:
    """A feature that took several values over the flows of a profile.

    Attributes:
        values: The distinct values, in first-seen order.
    """

    values: tuple[Any, ...]

    def to_json(self) -> dict[str, Any]:
        """``{"varies": [values]}``."""
        return {"varies": list(self.values)}

    def __contains__(self, value: object) -> bool:
        return _key(value) in {_key(v) for v in self.values}


@dataclass(frozen=True, slots=True)
class Profile:
    """Features of one peer merged over ``flows`` flows.

    Attributes:
        label: Where the flows came from (for printing).
        flows: How many flows were merged.
        features: feature -> value or :class:`Varying`.
    """

    label: str
    flows: int
    features: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON object: ``label``, ``flows``, ``features`` (varying ones as ``{"varies"}``)."""
        return {"label": self.label, "flows": self.flows,
                "features": {k: (v.to_json() if isinstance(v, Varying) else v)
                             for k, v in self.features.items()}}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Profile:
        """Inverse of :meth:`to_json`."""
        feats: dict[str, Any] = {}
        for k, v in dict(obj.get("features", {})).items():
            if isinstance(v, dict) and set(v) == {"varies"}:
                feats[k] = Varying(tuple(v["varies"]))
            else:
                feats[k] = v
        return cls(label=str(obj.get("label", "")), flows=int(obj.get("flows", 1)),
                   features=feats)


def profile(flows: Iterable[Mapping[str, Any]], label: str = "") -> Profile:
    """Merge the feature dicts of several flows of one peer (see the module docstring)."""
    flows = list(flows)
    merged: dict[str, Any] = {}
    names: dict[str, None] = {}
    for f in flows:
        names.update(dict.fromkeys(f))
    for name in names:
        seen: dict[str, Any] = {}
        for f in flows:
            seen.setdefault(_key(f.get(name)), f.get(name))
        values = tuple(seen.values())
        merged[name] = values[0] if len(values) == 1 else Varying(values)
    for ordered, permuted in _PERMUTED_NAME.items():
        if ordered not in names:
            continue
        if len(flows) < 2:
            merged[permuted] = None
        else:
            merged[permuted] = isinstance(merged[ordered], Varying) and not isinstance(
                merged.get(PERMUTABLE[ordered]), Varying)
    return Profile(label=label, flows=len(flows), features=merged)


@dataclass(frozen=True, slots=True)
class Difference:
    """One differing feature.

    Attributes:
        feature: Its name.
        a: Its value in the first profile (``None`` if absent).
        b: Its value in the second profile.
    """

    feature: str
    a: Any
    b: Any

    def to_json(self) -> dict[str, Any]:
        """``{"feature", "a", "b"}``."""
        def j(v: Any) -> Any:
            return v.to_json() if isinstance(v, Varying) else v
        return {"feature": self.feature, "a": j(self.a), "b": j(self.b)}


def _equal(a: Any, b: Any, ignore_random: bool) -> bool:
    va, vb = isinstance(a, Varying), isinstance(b, Varying)
    if va and vb:
        return ignore_random or {_key(x) for x in a.values} == {_key(x) for x in b.values}
    if va or vb:
        if not ignore_random:
            return False
        return (b in a) if va else (a in b)
    return _key(a) == _key(b)


def compare(a: Profile, b: Profile, *, ignore_random: bool = True,
            prefixes: Iterable[str] = ("client.", "server.")) -> list[Difference]:
    """The features whose values differ between ``a`` and ``b`` (in ``a``'s order, then ``b``'s).

    Args:
        a: First profile.
        b: Second profile.
        ignore_random: Skip random-by-design features and permuted orders (module docstring).
        prefixes: Only features starting with one of these (``("client.",)`` for the hello).
    """
    prefixes = tuple(prefixes)
    names = [n for n in {**dict.fromkeys(a.features), **dict.fromkeys(b.features)}
             if n.startswith(prefixes)]
    skip: set[str] = set()
    if ignore_random:
        skip |= RANDOM_FEATURES
        for ordered, permuted in _PERMUTED_NAME.items():
            if a.features.get(permuted) or b.features.get(permuted):
                skip.add(ordered)
            if a.features.get(permuted) is None or b.features.get(permuted) is None:
                skip.add(permuted)
    out = []
    for n in names:
        if n in skip:
            continue
        va, vb = a.features.get(n), b.features.get(n)
        if not _equal(va, vb, ignore_random):
            out.append(Difference(n, va, vb))
    # the parts of a feature that one side lacks altogether (client.tls.ech.kdf when only one
    # side sends ECH) are not repeated after the feature itself
    differing = {d.feature for d in out}
    return [d for d in out if not ((d.a is None or d.b is None)
                                   and d.feature.rsplit(".", 1)[0] in differing)]
