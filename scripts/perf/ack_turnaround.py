"""Each end's turnaround in the runner's captures of a download (issue 13, lossy-wan).

``python3 scripts/perf/ack_turnaround.py REP_DIR...`` reads ``client.pcap`` and ``server.pcap``
of each runner rep directory (``results/runs/<run>/<scenario>/<workload>/<pair>/rep-N``; raw-IP
pcaps, IPv4/UDP) and prints, per rep:

- ``data/ack``: the server's data datagrams (> 1000 bytes) per small (< 100 bytes) datagram the
  client sends back, as the client's capture sees them (RFC 9000 §13.2.2 recommends an ACK
  every second ack-eliciting packet: 2.0 on virtual time, more when a client reads several
  datagrams per batch and acknowledges them together);
- ``client wait``: from the first datagram an ACK covers arriving at the client to that ACK
  leaving it, in ms (median, mean of those under 20 ms, share at 20 ms or more: a lone packet
  waiting for the delayed-ACK timer, max_ack_delay 25 ms);
- ``server turn``: from an ACK arriving at the server to the next data datagram leaving it, in ms
  (median, mean of those under 5 ms): the sender's share of the loop a window-limited flow pays
  once per round trip.

Both are time on one capture, so clock offsets between namespaces do not enter. The figures of
docs/scenarios.md ("lossy-wan with the default controller: what the client costs") come from it.
"""

from __future__ import annotations

import statistics
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

#: pcap global header and per-record header sizes (libpcap format)
_GLOBAL_HEADER = 24
_RECORD_HEADER = 16
_UDP = 17


def datagrams(path: Path) -> Iterator[tuple[float, int, int, int]]:
    """(time, source port, destination port, UDP payload length) of each IPv4/UDP record."""
    data = path.read_bytes()
    off = _GLOBAL_HEADER
    while off + _RECORD_HEADER <= len(data):
        sec, usec, incl, _orig = struct.unpack_from("<IIII", data, off)
        pkt = data[off + _RECORD_HEADER:off + _RECORD_HEADER + incl]
        off += _RECORD_HEADER + incl
        if len(pkt) < 28 or pkt[0] >> 4 != 4 or pkt[9] != _UDP:
            continue
        ihl = (pkt[0] & 15) * 4
        sport, dport, ulen = struct.unpack_from(">HHH", pkt, ihl)
        yield sec + usec / 1e6, sport, dport, ulen - 8


def server_port(records: list[tuple[float, int, int, int]]) -> int:
    """The port most large datagrams come from."""
    counts: dict[int, int] = {}
    for _t, sport, _d, length in records:
        if length > 1000:
            counts[sport] = counts.get(sport, 0) + 1
    return max(counts, key=lambda p: counts[p])


def client_side(path: Path) -> str:
    """Data datagrams per ACK and the client's ACK wait, from the client's capture."""
    records = list(datagrams(path))
    port = server_port(records)
    first: float | None = None
    since = 0
    waits: list[float] = []
    per_ack: list[int] = []
    for t, sport, dport, length in records:
        if sport == port and length > 1000:
            since += 1
            if first is None:
                first = t
        elif dport == port and length < 100 and first is not None:
            waits.append((t - first) * 1000)
            per_ack.append(since)
            first, since = None, 0
    short = [w for w in waits if w < 20]
    return (f"data/ack {statistics.mean(per_ack):.2f}  client wait med "
            f"{statistics.median(waits):.3f} mean(<20) {statistics.mean(short):.3f} "
            f">=20ms {sum(w >= 20 for w in waits) / len(waits):.3f}")


def server_side(path: Path) -> str:
    """The server's ACK-to-data turnaround, from the server's capture."""
    records = list(datagrams(path))
    port = server_port(records)
    pending: float | None = None
    turns: list[float] = []
    for t, sport, dport, length in records:
        if dport == port and length < 100:
            if pending is None:
                pending = t
        elif sport == port and length > 1000 and pending is not None:
            turns.append((t - pending) * 1000)
            pending = None
    short = [x for x in turns if x < 5]
    return f"server turn med {statistics.median(turns):.3f} mean(<5) {statistics.mean(short):.3f}"


def main(argv: list[str]) -> int:
    """Print one line per rep directory."""
    if not argv:
        print(__doc__)
        return 2
    for arg in argv:
        rep = Path(arg)
        print(f"{rep}: {client_side(rep / 'client.pcap')}  {server_side(rep / 'server.pcap')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
