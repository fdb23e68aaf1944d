"""tshark extraction for the QUIC fingerprint tool: datagrams, flows, first flights, hello trees.

Theory of operation
-------------------
Everything protocol-specific comes from tshark's own dissectors; nothing here parses TLS.

1. **Datagrams** (:func:`read_datagrams`): one ``tshark -T fields`` pass over the QUIC packets of
   the capture gives, per UDP datagram, its addresses, its UDP payload size and the type of each
   QUIC packet in it (``initial``, ``0rtt``, ``handshake``, ``retry``, ``1rtt``), plus the
   handshake message types tshark saw complete in it.
2. **Flows** (:func:`split_flows`): datagrams grouped by their UDP 4-tuple. The client is the
   sender of the flow's first Initial.
3. **First flights** (:func:`first_flights`):

   * the *client's* first flight is its datagrams from the first up to the one in which tshark
     finishes reassembling the ClientHello (Chromium splits the hello over two Initials and
     shuffles CRYPTO fragments between them);
   * the *server's* first flight is its datagrams before the client's first datagram that carries
     a 1-RTT packet (what a passive observer can delimit without keys). A flow in which the client
     never sends 1-RTT ends the server's flight at its first datagram that is 1-RTT only.

4. **Trees** (:func:`read_trees`): a second pass, ``tshark -T json`` restricted to the first-flight
   frames, decoded with an ``object_pairs_hook`` into :class:`Node` so that repeated keys (several
   QUIC packets per datagram, several extensions with the same label) keep their document order.

Keys: a pcapng with a Decryption Secrets Block decrypts on its own; otherwise pass ``keylog``.
Initial packets (ClientHello, ServerHello) need no keys; the server's Handshake flight
(EncryptedExtensions, Certificate, its transport parameters) does.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Datagram",
    "Flow",
    "Node",
    "first_flights",
    "read_datagrams",
    "read_trees",
    "split_flows",
    "tshark_json_argv",
    "tshark_rows_argv",
]

LONG_TYPES = {0: "initial", 1: "0rtt", 2: "handshake", 3: "retry"}

_ROW_FIELDS = ("frame.number", "frame.time_relative", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst",
               "udp.srcport", "udp.dstport", "udp.length", "quic.header_form",
               "quic.long.packet_type", "quic.version", "tls.handshake.type")


class Node:
    """One object of tshark's JSON output, with its keys in document order (repeats kept).

    Args:
        pairs: The ``(key, value)`` pairs as the JSON decoder saw them.
    """

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs

    def __repr__(self) -> str:
        return f"Node({[k for k, _ in self.pairs]})"

    def get(self, key: str, default: Any = None) -> Any:
        """The first direct child called ``key``."""
        for k, v in self.pairs:
            if k == key:
                return v
        return default

    def all(self, key: str) -> list[Any]:
        """Every direct child called ``key``, in order."""
        return [v for k, v in self.pairs if k == key]

    def find(self, key: str) -> list[Any]:
        """Every value called ``key`` anywhere below, depth-first in document order."""
        return list(self._walk(key))

    def first(self, key: str, default: Any = None) -> Any:
        """The first value called ``key`` anywhere below."""
        return next(self._walk(key), default)

    def items_with_prefix(self, prefix: str) -> list[tuple[str, Any]]:
        """Direct children whose key starts with ``prefix`` (e.g. ``"Extension: "``)."""
        return [(k, v) for k, v in self.pairs if k.startswith(prefix)]

    def nodes(self, key: str) -> list[Node]:
        """Every :class:`Node` called ``key`` anywhere below (lists flattened)."""
        out: list[Node] = []
        for v in self._walk(key):
            out.extend(x for x in (v if isinstance(v, list) else [v]) if isinstance(x, Node))
        return out

    def _walk(self, key: str) -> Iterator[Any]:
        for k, v in self.pairs:
            if k == key:
                yield v
            for child in (v if isinstance(v, list) else [v]):
                if isinstance(child, Node):
                    yield from child._walk(key)


@dataclass(frozen=True, slots=True)
class Datagram:
    """One UDP datagram carrying QUIC.

    Attributes:
        number: tshark frame number.
        time: Seconds since the capture's first packet.
        src: Sender ``addr:port``.
        dst: Receiver ``addr:port``.
        size: UDP payload bytes.
        packets: QUIC packet types in order (``initial``, ``0rtt``, ``handshake``, ``retry``,
            ``1rtt``).
        version: QUIC version of the first long-header packet (``0x00000001``), if any.
        handshake_types: TLS handshake message types whose reassembly tshark completed here.
    """

    number: int
    time: float
    src: str
    dst: str
    size: int
    packets: tuple[str, ...]
    version: str | None
    handshake_types: tuple[int, ...]

    @property
    def coalescing(self) -> str:
        """Packet types joined by ``+`` (``initial+handshake+1rtt``)."""
        return "+".join(self.packets)


@dataclass(frozen=True, slots=True)
class Flow:
    """The datagrams of one UDP 4-tuple, the client being the sender of the first Initial.

    Attributes:
        index: 1-based position of the flow in the capture (by first datagram).
        client: Client ``addr:port``.
        server: Server ``addr:port``.
        datagrams: Both directions, in capture order.
    """

    index: int
    client: str
    server: str
    datagrams: tuple[Datagram, ...]

    def sent_by_client(self) -> list[Datagram]:
        """The client's datagrams."""
        return [d for d in self.datagrams if d.src == self.client]

    def sent_by_server(self) -> list[Datagram]:
        """The server's datagrams."""
        return [d for d in self.datagrams if d.src == self.server]


def _base_argv(pcap: str | Path, keylog: str | Path | None) -> list[str]:
    argv = ["tshark", "-r", str(pcap), "-n"]
    if keylog:
        argv += ["-o", f"tls.keylog_file:{keylog}"]
    return argv


def tshark_rows_argv(pcap: str | Path, keylog: str | Path | None = None) -> list[str]:
    """argv of the datagram pass (``-T fields``, every occurrence, tab-separated)."""
    argv = _base_argv(pcap, keylog)
    argv += ["-Y", "quic", "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a",
             "-E", "aggregator=,", "-E", "quote=n"]
    for f in _ROW_FIELDS:
        argv += ["-e", f]
    return argv


def tshark_json_argv(pcap: str | Path, frames: Iterable[int],
                     keylog: str | Path | None = None) -> list[str]:
    """argv of the tree pass (``-T json`` of ``frames`` only, frame/udp/quic layers)."""
    numbers = ", ".join(str(n) for n in sorted(set(frames)))
    argv = _base_argv(pcap, keylog)
    argv += ["-Y", f"frame.number in {{{numbers}}}", "-T", "json", "-J", "frame udp quic"]
    return argv


def _run(argv: Sequence[str], timeout: float) -> str:
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def _ints(text: str) -> list[int]:
    return [int(x, 0) for x in text.split(",") if x.strip()]


def parse_rows(text: str) -> list[Datagram]:
    """Datagrams from the output of :func:`tshark_rows_argv` (no header line)."""
    out: list[Datagram] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        cols = line.split("\t")
        cols += [""] * (len(_ROW_FIELDS) - len(cols))
        row = dict(zip(_ROW_FIELDS, cols, strict=False))
        src = row["ip.src"] or row["ipv6.src"]
        dst = row["ip.dst"] or row["ipv6.dst"]
        forms = _ints(row["quic.header_form"])
        longs = iter(_ints(row["quic.long.packet_type"]))
        packets = tuple(LONG_TYPES.get(next(longs, -1), "long?") if f else "1rtt" for f in forms)
        versions = [v for v in row["quic.version"].split(",") if v]
        out.append(Datagram(
            number=int(row["frame.number"]), time=float(row["frame.time_relative"] or 0.0),
            src=f"{_bracket(src)}:{row['udp.srcport']}", dst=f"{_bracket(dst)}:{row['udp.dstport']}",
            size=int(row["udp.length"].split(",")[0]) - 8, packets=packets,
            version=versions[0] if versions else None,
            handshake_types=tuple(_ints(row["tls.handshake.type"]))))
    return out


def _bracket(addr: str) -> str:
    addr = addr.split(",")[0]
    return f"[{addr}]" if ":" in addr else addr


def read_datagrams(pcap: str | Path, *, keylog: str | Path | None = None,
                   timeout: float = 300.0) -> list[Datagram]:
    """Every QUIC-carrying UDP datagram of ``pcap`` (tshark pass 1)."""
    return parse_rows(_run(tshark_rows_argv(pcap, keylog), timeout))


def split_flows(datagrams: Iterable[Datagram]) -> list[Flow]:
    """Group datagrams by UDP 4-tuple; flows without a client Initial are dropped."""
    groups: dict[frozenset[str], list[Datagram]] = {}
    for d in datagrams:
        groups.setdefault(frozenset((d.src, d.dst)), []).append(d)
    flows: list[Flow] = []
    for dgs in groups.values():
        first_initial = next((d for d in dgs if "initial" in d.packets), None)
        if first_initial is None:
            continue
        flows.append(Flow(index=0, client=first_initial.src, server=first_initial.dst,
                          datagrams=tuple(dgs)))
    flows.sort(key=lambda f: f.datagrams[0].number)
    return [Flow(index=i + 1, client=f.client, server=f.server, datagrams=f.datagrams)
            for i, f in enumerate(flows)]


@dataclass(frozen=True, slots=True)
class FirstFlights:
    """The two first flights of a flow (see the module docstring for the rules).

    Attributes:
        client: The client's datagrams up to the one completing the ClientHello.
        client_hello_complete: Whether tshark reassembled a ClientHello at all.
        server: The server's datagrams before the client's first 1-RTT datagram.
        server_bounded: Whether the client's 1-RTT datagram (or the server's first pure 1-RTT
            one) was seen, i.e. the server flight is known to be complete.
    """

    client: tuple[Datagram, ...]
    client_hello_complete: bool
    server: tuple[Datagram, ...]
    server_bounded: bool


def first_flights(flow: Flow) -> FirstFlights:
    """The client's and the server's first flights of ``flow``."""
    client: list[Datagram] = []
    complete = False
    for d in flow.sent_by_client():
        client.append(d)
        if 1 in d.handshake_types:
            complete = True
            break
    if not complete:
        client = [d for d in flow.sent_by_client() if "initial" in d.packets][:1]
    end = next((d.number for d in flow.sent_by_client() if "1rtt" in d.packets), None)
    server: list[Datagram] = []
    bounded = end is not None
    for d in flow.sent_by_server():
        if end is not None and d.number > end:
            break
        if end is None and d.packets and set(d.packets) == {"1rtt"}:
            bounded = True
            break
        server.append(d)
    return FirstFlights(client=tuple(client), client_hello_complete=complete,
                        server=tuple(server), server_bounded=bounded)


def decode_json(text: str) -> list[Node]:
    """tshark ``-T json`` text → one :class:`Node` per packet (the ``_source.layers`` object)."""
    docs = json.loads(text or "[]", object_pairs_hook=Node)
    out: list[Node] = []
    for doc in docs:
        layers = doc.get("_source", Node([])).get("layers")
        if isinstance(layers, Node):
            out.append(layers)
    return out


def read_trees(pcap: str | Path, frames: Iterable[int], *, keylog: str | Path | None = None,
               timeout: float = 300.0) -> dict[int, Node]:
    """frame number → its layers tree, for ``frames`` only (tshark pass 2)."""
    frames = list(frames)
    if not frames:
        return {}
    trees: dict[int, Node] = {}
    for layers in decode_json(_run(tshark_json_argv(pcap, frames, keylog), timeout)):
        frame = layers.get("frame")
        if isinstance(frame, Node):
            trees[int(frame.get("frame.number"))] = layers
    return trees
