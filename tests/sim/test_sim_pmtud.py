"""DPLPMTUD end to end on virtual time (RFC 8899, RFC 9000 §14.3; connection/pmtud.py).

The link model drops datagrams above its IP MTU silently (``LinkModel.mtu`` counts the 28-byte
IPv4/UDP header), as a path with DF set does. The server downloads to the client.
"""

from __future__ import annotations

import hashlib
from typing import Any

from simpair import LinkModel
from test_sim_pair import EchoPair, handshake

from quicreality.qlog.sink import RecordingSink
from quicreality.quic.connection.pmtud import BASE_PLPMTU, SEARCH_GRANULARITY


class SizedPair(EchoPair):
    """Records the size of every datagram the server sends, and can change the MTU at a time."""

    mtu_change: tuple[float, int] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.server_sizes: list[tuple[float, int]] = []

    def _transmit(self, direction: str, data: bytes, ecn: int = 0) -> None:
        if self.mtu_change is not None and self.now >= self.mtu_change[0]:
            self.link.mtu = self.mtu_change[1]
        if direction == "to_client":
            self.server_sizes.append((self.now, len(data)))
        super()._transmit(direction, data, ecn)


def download(link: LinkModel, size: int, *, mtu_change: tuple[float, int] | None = None,
             server: dict[str, Any] | None = None, client: dict[str, Any] | None = None
             ) -> tuple[SizedPair, RecordingSink]:
    sinks: dict[bool, RecordingSink] = {}

    def factory(odcid: bytes, is_client: bool) -> RecordingSink:
        sinks[is_client] = RecordingSink()
        return sinks[is_client]

    pair = SizedPair(seed=2, link=link, client_overrides=client or {},
                     server_overrides={"qlog_factory": factory, **(server or {})})
    pair.mtu_change = mtu_change
    pair.response_size = size
    handshake(pair)
    (sid,) = pair.request()
    pair.run(lambda: sid in pair.finished, max_time=120)
    assert hashlib.sha256(bytes(pair.received[sid])).digest() == hashlib.sha256(
        pair.body(size)).digest()
    return pair, sinks[False]


def mtu_updates(sink: RecordingSink) -> list[dict[str, Any]]:
    return [args["data"] for n, _, args in sink.records
            if n == "custom" and args.get("name") == "connectivity:mtu_updated"]


def test_a_1500_byte_path_carries_1452_byte_datagrams() -> None:
    pair, sink = download(LinkModel(mtu=1500), 2_000_000)
    assert mtu_updates(sink) == [{"old": 1200, "new": 1452, "done": True, "trigger": "probe_acked"}]
    sizes = [n for _, n in pair.server_sizes]
    full = sum(1 for n in sizes if n == 1452)
    print(f"1500-byte path: {full} of {len(sizes)} server datagrams at 1452 bytes")
    assert full > 0.9 * len(sizes)  # all but the handshake, the probe's wait and the tail
    assert max(sizes) == 1452


def test_cap_of_1200_sends_no_probe() -> None:
    pair, sink = download(LinkModel(mtu=1500), 300_000, server={"max_datagram_size": 1200})
    assert mtu_updates(sink) == []
    assert max(n for _, n in pair.server_sizes) == BASE_PLPMTU


def test_peer_max_udp_payload_size_caps_the_search() -> None:
    pair, sink = download(LinkModel(mtu=1500), 500_000, client={"max_udp_payload_size": 1350})
    assert mtu_updates(sink)[-1]["new"] == 1350
    assert max(n for _, n in pair.server_sizes) == 1350


def test_a_narrower_path_is_bisected_and_lost_probes_are_not_congestion() -> None:
    # 1300-byte IP MTU: 1272-byte UDP payloads pass, larger ones vanish. No other loss.
    pair, sink = download(LinkModel(mtu=1300, rate_bps=20e6), 4_000_000)
    final = mtu_updates(sink)[-1]
    assert final["done"] and 1272 - SEARCH_GRANULARITY <= final["new"] <= 1272
    # The probes that were too big were dropped by the link ...
    assert pair.dropped["to_client"] >= 3
    # ... and none of them was declared lost to recovery or cut the window (RFC 9000 §14.4).
    assert not [r for r in sink.records if r[0] == "packet_lost"]
    assert not [r for r in sink.records if r[0] == "congestion_state_updated"
                and r[2].get("new") == "recovery"]


def test_an_mtu_black_hole_falls_back_and_searches_again() -> None:
    # The path carries 1452-byte datagrams, then its MTU drops to 1280 mid-transfer.
    link = LinkModel(mtu=1500, rate_bps=20e6, queue_bytes=200_000)
    pair, sink = download(link, 8_000_000, mtu_change=(0.8, 1280))
    updates = mtu_updates(sink)
    assert updates[0]["new"] == 1452
    triggers = [u["trigger"] for u in updates]
    assert "black_hole" in triggers
    hole = triggers.index("black_hole")
    assert updates[hole]["new"] == BASE_PLPMTU
    # The new search settles within the narrower path (1252-byte payloads).
    assert updates[-1]["done"] and updates[-1]["new"] <= 1252
    late = [n for t, n in pair.server_sizes if t > pair.now - 0.5]
    assert max(late) <= 1252
