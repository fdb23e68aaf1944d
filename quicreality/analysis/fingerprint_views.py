"""Tables of fingerprints for notebooks (``notebooks/camouflage.py``): pandas views, no parsing.

>>> flows = fixture_flows()                      # tests/data/fingerprint/*.pcap
>>> side_by_side({n: profile_of(f) for n, f in flows.items()}, only_differing=True)
>>> diff_table(chromium_reference(), {n: profile_of(f) for n, f in flows.items()})
>>> server_flights(flows)
>>> timeline(flows["chromium-ours"][0])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from .fingerprint import FlowFingerprint, fingerprint_pcap, load_profile, show_value
from .fingerprint_compare import Profile, compare, profile
from .fingerprint_tshark import read_datagrams, split_flows

__all__ = [
    "FIXTURES",
    "REFERENCE",
    "chromium_reference",
    "diff_table",
    "fixture_flows",
    "profile_of",
    "server_flights",
    "side_by_side",
    "timeline",
]

#: the committed captures (tests/data/fingerprint/README.md)
#: The checkout this package sits in (quicreality/analysis/ -> the repository root).
REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "data" / "fingerprint"
#: Chromium 156's client profile from 24 connections
REFERENCE = REPO_ROOT / "docs" / "data" / "chrome156-hello.json"


def fixture_flows(directory: str | Path | None = None) -> dict[str, list[FlowFingerprint]]:
    """capture name → its flows, for every ``*.pcap`` in ``directory`` (default :data:`FIXTURES`)."""
    d = Path(directory) if directory is not None else FIXTURES
    return {p.stem: fingerprint_pcap(p) for p in sorted(d.glob("*.pcap"))}


def profile_of(flows: Iterable[FlowFingerprint], label: str = "") -> Profile:
    """The profile of some flows (all features)."""
    return profile((f.features for f in flows), label=label)


def chromium_reference() -> Profile:
    """``docs/data/chrome156-hello.json`` as a profile."""
    return load_profile(str(REFERENCE))


def side_by_side(profiles: Mapping[str, Profile], *, prefixes: Sequence[str] = ("client.",),
                 only_differing: bool = False, width: int = 60) -> pd.DataFrame:
    """One row per feature, one column per profile, values as the CLI prints them (cut to
    ``width`` characters); ``only_differing`` keeps the rows whose values are not all equal."""
    names: dict[str, None] = {}
    for p in profiles.values():
        names.update(dict.fromkeys(k for k in p.features if k.startswith(tuple(prefixes))))
    rows = {}
    for n in names:
        cells = [show_value(n, p.features[n]) if n in p.features else "" for p in profiles.values()]
        if only_differing and len(set(cells)) == 1:
            continue
        rows[n] = [c if len(c) <= width else c[:width - 1] + "…" for c in cells]
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(profiles))


def diff_table(reference: Profile, profiles: Mapping[str, Profile], *,
               prefixes: Sequence[str] = ("client.",)) -> pd.DataFrame:
    """Per profile: how many features differ from ``reference`` (random fields ignored), which."""
    rows = []
    for name, p in profiles.items():
        diffs = compare(reference, p, prefixes=prefixes)
        rows.append({"capture": name, "flows": p.flows, "differing": len(diffs),
                     "features": ", ".join(d.feature.split(".", 1)[1] for d in diffs)})
    return pd.DataFrame(rows).set_index("capture")


def server_flights(flows: Mapping[str, Sequence[FlowFingerprint]]) -> pd.DataFrame:
    """One row per flow: the server's first-flight datagrams and its ServerHello shape."""
    rows = []
    for name, fps in flows.items():
        for fp in fps:
            f = fp.features
            rows.append({"capture": name, "flow": fp.index,
                         "datagrams": f.get("server.flight.datagrams"),
                         "sizes": " ".join(str(s) for s in f.get("server.flight.sizes", [])),
                         "coalescing": " ".join(f.get("server.flight.coalescing", [])),
                         "cipher": f.get("server.tls.cipher_suite"),
                         "sh_extensions": " ".join(f.get("server.tls.extensions", [])),
                         "group": f.get("server.tls.key_share_group"),
                         "scid_len": f.get("server.quic.scid_len"),
                         "certificate_len": f.get("server.tls.certificate_len")})
    return pd.DataFrame(rows)


def timeline(fp: FlowFingerprint, *, limit: int = 12) -> pd.DataFrame:
    """The first ``limit`` datagrams of a flow: time (ms), direction, size, coalesced packets."""
    flow = split_flows(read_datagrams(fp.pcap))[fp.index - 1]
    t0 = flow.datagrams[0].time
    return pd.DataFrame([{"frame": d.number, "t_ms": round((d.time - t0) * 1000, 2),
                          "dir": "C→S" if d.src == flow.client else "S→C", "size": d.size,
                          "packets": d.coalescing,
                          "hello": "CH" if 1 in d.handshake_types else
                                   "SH" if 2 in d.handshake_types else ""}
                         for d in flow.datagrams[:limit]])
