"""``python -m quicreality.analysis.fingerprint``: per-flow QUIC client/server fingerprints.

::

    python -m quicreality.analysis.fingerprint PCAP... [--keylog FILE] [--json] [--side S]
    python -m quicreality.analysis.fingerprint PCAP... --profile [--label L] [--json]
    python -m quicreality.analysis.fingerprint --compare A B [--strict] [--side S] [--json]

* Per QUIC flow (UDP 4-tuple) it prints the client's features (QUIC version, CID lengths, the
  first flight's datagram sizes and Initial layout, the ClientHello with GREASE normalised,
  transport parameters, JA4) and the server's (ServerHello, first-flight datagram sizes and
  coalescing; EncryptedExtensions, certificate sizes and transport parameters when decrypted).
* ``--profile`` merges all flows of the given captures into one profile (features that vary
  between connections are shown as ``varies``), the form of ``docs/data/chrome156-hello.json``.
* ``--compare A B`` prints only the features that differ. ``A``/``B`` are a capture (all its
  flows form one profile), ``PCAP#N`` (its N-th flow, 1-based) or a JSON profile written by
  ``--profile --json``. Random fields (GREASE draws, per-connection frame layout, orders that a
  side permutes) are ignored unless ``--strict``. Exit status 0 if nothing differs, 1 otherwise.
* ``--keylog FILE`` decrypts the Handshake flight (default: ``PCAP`` with its suffix replaced by
  ``.keys``, if that exists; a pcapng with injected secrets needs none).

Exit status 2 with one ``error:`` line for unreadable inputs. See docs/camouflage.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fingerprint_compare import Difference, Profile, Varying, compare, profile
from .fingerprint_features import client_features, server_features
from .fingerprint_tshark import first_flights, read_datagrams, read_trees, split_flows

__all__ = [
    "FlowFingerprint",
    "default_keylog",
    "fingerprint_pcap",
    "format_differences",
    "format_flow",
    "load_profile",
    "main",
    "show_value",
]

#: names shown next to code points in the text output (not part of the features), by the kind
#: of code point a feature holds
EXTENSION_NAMES: dict[str, str] = {
    "0x0000": "server_name", "0x0005": "status_request", "0x000a": "supported_groups",
    "0x000b": "ec_point_formats", "0x000d": "signature_algorithms", "0x0010": "alpn",
    "0x0012": "sct", "0x0015": "padding", "0x0016": "encrypt_then_mac",
    "0x0017": "extended_master_secret", "0x001b": "compress_certificate",
    "0x001c": "record_size_limit", "0x0023": "session_ticket", "0x0029": "pre_shared_key",
    "0x002a": "early_data", "0x002b": "supported_versions", "0x002d": "psk_key_exchange_modes",
    "0x0033": "key_share", "0x0039": "quic_transport_parameters", "0x4469": "alps(old)",
    "0x44cd": "alps", "0xca34": "trust_anchors", "0xfe0d": "ech", "0xff01": "renegotiation_info",
}
GROUP_NAMES: dict[str, str] = {
    "0x11ec": "X25519MLKEM768", "0x001d": "x25519", "0x0017": "secp256r1", "0x0018": "secp384r1",
    "0x0019": "secp521r1", "0x001e": "x448", "0x0100": "ffdhe2048",
}
CIPHER_NAMES: dict[str, str] = {
    "0x1301": "AES_128_GCM", "0x1302": "AES_256_GCM", "0x1303": "CHACHA20",
    "0x1304": "AES_128_CCM",
}


def _names_for(feature: str) -> dict[str, str]:
    if "extensions" in feature:
        return EXTENSION_NAMES
    if "group" in feature:
        return GROUP_NAMES
    if "cipher" in feature:
        return CIPHER_NAMES
    return {}


@dataclass(frozen=True, slots=True)
class FlowFingerprint:
    """The features of one QUIC flow of a capture.

    Attributes:
        pcap: The capture.
        index: 1-based flow number in it.
        client: Client ``addr:port``.
        server: Server ``addr:port``.
        features: ``client.*`` and ``server.*`` features.
    """

    pcap: str
    index: int
    client: str
    server: str
    features: dict[str, Any]

    def side(self, prefix: str) -> dict[str, Any]:
        """Only the features starting with ``prefix`` (``"client."`` or ``"server."``)."""
        return {k: v for k, v in self.features.items() if k.startswith(prefix)}

    def to_json(self) -> dict[str, Any]:
        """``pcap``, ``flow``, ``client``, ``server`` and ``features``."""
        return {"pcap": self.pcap, "flow": self.index, "client": self.client,
                "server": self.server, "features": self.features}


def default_keylog(pcap: str | Path) -> Path | None:
    """``PCAP`` with its suffix replaced by ``.keys`` if that file exists."""
    p = Path(pcap).with_suffix(".keys")
    return p if p.is_file() else None


def fingerprint_pcap(pcap: str | Path, *, keylog: str | Path | None = None,
                     timeout: float = 300.0) -> list[FlowFingerprint]:
    """Fingerprint every QUIC flow of ``pcap`` (two tshark passes).

    Args:
        pcap: pcap or pcapng.
        keylog: NSS key log (default: :func:`default_keylog`).
        timeout: Per tshark run, seconds.
    """
    if not Path(pcap).is_file():
        raise FileNotFoundError(f"no capture {pcap}")
    keylog = keylog or default_keylog(pcap)
    flows = split_flows(read_datagrams(pcap, keylog=keylog, timeout=timeout))
    flights = [first_flights(f) for f in flows]
    frames = [d.number for ff in flights for d in (*ff.client, *ff.server)]
    trees = read_trees(pcap, frames, keylog=keylog, timeout=timeout)
    out = []
    for flow, ff in zip(flows, flights, strict=False):
        feats = client_features(ff, trees)
        feats.update(server_features(ff, trees))
        out.append(FlowFingerprint(pcap=str(pcap), index=flow.index, client=flow.client,
                                   server=flow.server, features=feats))
    return out


def load_profile(spec: str, *, keylog: str | Path | None = None) -> Profile:
    """A profile from ``PCAP``, ``PCAP#N`` or a JSON profile file (see the module docstring)."""
    path, _, flow = spec.partition("#")
    if path.endswith(".json"):
        with open(path) as f:
            return Profile.from_json(json.load(f))
    fps = fingerprint_pcap(path, keylog=keylog)
    if flow:
        fps = [fp for fp in fps if fp.index == int(flow)]
        if not fps:
            raise ValueError(f"{path} has no flow {flow}")
    if not fps:
        raise ValueError(f"{path} has no QUIC flow with a client Initial")
    return profile((fp.features for fp in fps), label=spec)


def show_value(name: str, v: Any) -> str:
    """A feature value as the text output prints it (code points annotated with names)."""
    if isinstance(v, Varying):
        return "varies: " + " | ".join(show_value(name, x) for x in v.values)
    if isinstance(v, list):
        return "[" + " ".join(show_value(name, x) for x in v) + "]"
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=False)
    if isinstance(v, str) and v.startswith("0x"):
        label = _names_for(name).get(v)
        return f"{v}({label})" if label else v
    return str(v)


def _lines(features: dict[str, Any], prefixes: Sequence[str]) -> list[str]:
    keys = [k for k in features if k.startswith(tuple(prefixes))]
    width = max((len(k) for k in keys), default=0)
    return [f"  {k.ljust(width)}  {show_value(k, features[k])}" for k in keys]


def format_flow(fp: FlowFingerprint, prefixes: Sequence[str] = ("client.", "server.")) -> str:
    """A text block for one flow."""
    head = f"== {fp.pcap} flow {fp.index}: client {fp.client} -> server {fp.server}"
    return "\n".join([head, *_lines(fp.features, prefixes)])


def format_differences(diffs: Iterable[Difference], a: str, b: str) -> str:
    """``feature: A=... | B=...`` lines (or a line saying nothing differs)."""
    diffs = list(diffs)
    if not diffs:
        return f"no differing features between {a} and {b}"
    width = max(len(d.feature) for d in diffs)
    lines = [f"{len(diffs)} differing features (A = {a}, B = {b})"]
    for d in diffs:
        lines.append(f"  {d.feature.ljust(width)}  A={show_value(d.feature, d.a)}")
        lines.append(f"  {' ' * width}  B={show_value(d.feature, d.b)}")
    return "\n".join(lines)


def _prefixes(side: str) -> tuple[str, ...]:
    return {"client": ("client.",), "server": ("server.",)}.get(side, ("client.", "server."))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m quicreality.analysis.fingerprint",
                                description="QUIC client/server fingerprints of captures")
    p.add_argument("pcaps", nargs="*", metavar="PCAP")
    p.add_argument("--keylog", help="NSS key log (default: PCAP's .keys sibling if present)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--side", choices=("client", "server", "both"), default="both")
    p.add_argument("--profile", action="store_true", help="merge all flows into one profile")
    p.add_argument("--label", default="", help="label of the --profile output")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"),
                   help="print the differing features of A and B (PCAP, PCAP#N or profile .json)")
    p.add_argument("--strict", action="store_true",
                   help="with --compare: also compare random fields and permuted orders")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    prefixes = _prefixes(args.side)
    try:
        if args.compare:
            a, b = (load_profile(s, keylog=args.keylog) for s in args.compare)
            diffs = compare(a, b, ignore_random=not args.strict, prefixes=prefixes)
            if args.json:
                print(json.dumps([d.to_json() for d in diffs], indent=1))
            else:
                print(format_differences(diffs, args.compare[0], args.compare[1]))
            return 1 if diffs else 0
        if not args.pcaps:
            _parser().error("give PCAP files or --compare A B")
        fps = [fp for pcap in args.pcaps for fp in fingerprint_pcap(pcap, keylog=args.keylog)]
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.profile:
        prof = profile((fp.features for fp in fps), label=args.label or " ".join(args.pcaps))
        prof = Profile(prof.label, prof.flows,
                       {k: v for k, v in prof.features.items() if k.startswith(prefixes)})
        if args.json:
            print(json.dumps(prof.to_json(), indent=1))
        else:
            print(f"== profile {prof.label} ({prof.flows} flows)")
            print("\n".join(_lines(prof.features, prefixes)))
        return 0
    if args.json:
        print(json.dumps([{**fp.to_json(), "features": fp.side(prefixes[0]) if len(prefixes) == 1
                           else fp.features} for fp in fps], indent=1))
    else:
        print("\n\n".join(format_flow(fp, prefixes) for fp in fps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
