"""The path-validation checks of quic-interop-runner's rebinding and migration cases, on our rows.

QIR (``testcases_quic.py``: ``TestCasePortRebinding``, ``TestCaseAddressRebinding``,
``TestCaseConnectionMigration``) walks the server's packets in capture order. Each time the
server sends on a path (its address and port, the client's address and port) it has not used
before, that packet must carry a PATH_CHALLENGE; every challenge must be echoed in a
PATH_RESPONSE from the client; more than one path must have been used (``rebind-addr``: more than
one client address). :func:`path_verdict` does the same on ``tshark -T fields`` rows
(:data:`PATH_FIELDS`, capture decrypted with the keys).

One extension, since tshark cannot always attach a server packet on a new path to its
connection (a client with zero-length connection IDs; tshark 4.0 after a move to a preferred
address): a server packet with no decrypted frame is *opaque*. For opaque packets the
challenges the server's own qlog says it sent (``logged_challenges``) stand in, and each of those
must be echoed by the client on the wire. The verdict says how many packets were opaque.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["PATH_FIELDS", "PathVerdict", "path_verdict", "qlog_sent_challenges"]

#: tshark fields :func:`path_verdict` reads (IPv4 rows; IPv6 rows use ipv6.src / ipv6.dst).
PATH_FIELDS = ("ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "udp.srcport", "udp.dstport",
               "quic.frame_type", "quic.path_challenge.data", "quic.path_response.data")

Path = tuple[str, str, str, str]  # (server address, server port, client address, client port)


@dataclass(frozen=True, slots=True)
class PathVerdict:
    """QIR's path checks: ``ok`` with the reasons it is not, and what was seen."""

    failures: tuple[str, ...]
    paths: tuple[Path, ...]
    client_addresses: tuple[str, ...]
    challenges: int
    responses: int
    opaque: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """No check failed."""
        return not self.failures


def _split(value: str) -> set[str]:
    return {v for v in value.split(",") if v}


def _src(row: Mapping[str, str]) -> str:
    return row.get("ip.src") or row.get("ipv6.src") or ""


def _dst(row: Mapping[str, str]) -> str:
    return row.get("ip.dst") or row.get("ipv6.dst") or ""


def path_verdict(rows: Sequence[Mapping[str, str]], server_endpoints: Iterable[tuple[str, int]], *,
                 logged_challenges: Iterable[str] = (), need_new_address: bool = False
                 ) -> PathVerdict:
    """QIR's rebinding / migration path check (see the module docstring).

    Args:
        rows: ``tshark -T fields`` rows of :data:`PATH_FIELDS`, in capture order.
        server_endpoints: the server's ``(address, port)`` pairs (a preferred address
            included); on loopback client and server share an address, so ports count.
        logged_challenges: PATH_CHALLENGE data the server's qlog says it sent.
        need_new_address: ``rebind-addr``: the client must have used more than one address.
    """
    servers = {(a, str(p)) for a, p in server_endpoints}
    failures: list[str] = []
    seen: set[Path] = set()
    last: Path | None = None
    challenges: set[str] = set()
    opaque = 0
    for r in rows:
        if (_src(r), r["udp.srcport"]) not in servers:
            continue
        cur = (_src(r), r["udp.srcport"], _dst(r), r["udp.dstport"])
        if last is None:
            last = cur
            continue
        if cur != last and cur not in seen:
            seen.add(last)
            last = cur
            data = _split(r.get("quic.path_challenge.data", ""))
            if not r.get("quic.frame_type"):
                opaque += 1
            elif not data:
                failures.append(f"first server packet on new path {cur} has no PATH_CHALLENGE "
                                f"(its frame types: {r.get('quic.frame_type')}; capture row "
                                f"{rows.index(r) + 1} of {len(rows)})")
            challenges |= data
    if last is not None:
        seen.add(last)
    logged = set(logged_challenges)
    if opaque and len(logged) < opaque:
        failures.append(f"{opaque} new-path server packets could not be decrypted and the qlog "
                        f"names only {len(logged)} challenges")
    if opaque:
        challenges |= logged
    responses = set().union(*(_split(r.get("quic.path_response.data", ""))
                              for r in rows if (_dst(r), r["udp.dstport"]) in servers)) \
        if rows else set()
    unanswered = sorted(challenges - responses)
    if len(seen) <= 1:
        failures.append(f"the server used {len(seen)} path(s); a rebinding needs more")
    clients = tuple(sorted({p[2] for p in seen}))
    if need_new_address and len(clients) <= 1:
        failures.append(f"the server saw only the client address(es) {list(clients)}")
    if unanswered:
        failures.append(f"PATH_CHALLENGE without PATH_RESPONSE: {unanswered}")
    notes = (f"{opaque} server packets on new paths not decryptable; their challenges from the "
             "server qlog",) if opaque else ()
    return PathVerdict(tuple(failures), tuple(sorted(seen)), clients, len(challenges),
                       len(responses), opaque, notes)


def qlog_sent_challenges(texts: Iterable[str]) -> list[str]:
    """PATH_CHALLENGE data in the ``packet_sent`` events of qlog JSON-SEQ texts (ours, either
    flavour), in order: the evidence for opaque packets."""
    out: list[str] = []
    for text in texts:
        for record in text.split("\x1e"):
            if '"path_challenge"' not in record or "packet_sent" not in record:
                continue
            event = json.loads(record)
            out += [f["data"] for f in event.get("data", {}).get("frames", [])
                    if f.get("frame_type") == "path_challenge" and "data" in f]
    return out
