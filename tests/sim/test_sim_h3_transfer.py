"""HTTP/3 downloads on virtual time through the server's real body pump (``H3ServerSession``
with the asyncio server's ``BODY_CHUNK`` and ``STREAM_HIGH_WATER``), on two catalog links.

The pump tops a response up while the stream holds less than ``STREAM_HIGH_WATER`` (1 MiB).
Until 2026-12-07 it counted bytes written and not yet *acknowledged*, so the flight could never
exceed ~1.1 MB, and a loss stalled it: the acknowledged prefix stops at the hole until the
retransmission arrives, while everything sent since still counts.

* long-rtt (10 Mbit/s, 1.5 s RTT, BDP 1.9 MB, 5 MB, CUBIC): 15.14 s from the first 1-RTT packet
  to the last (2.64 Mbit/s) with the old rule, 13.36 s (2.99) now: once the window passed
  ~1.1 MB the sender was application-limited at ~5.9 Mbit/s for the rest of the transfer.
* lossy-wan (50 Mbit/s, 20 ms, 1 % loss each way, 20 MB, ``bbr``): 41.1 Mbit/s with the old rule,
  45.7 now (the transport alone, without the pump, gives 46.0: test_sim_catalog_goodput.py).
  This was the runner's 10 % gap to TCP BBR on virtual time; EchoPair-based tests hand the
  whole response to the stream at once and could not show it.

The pump now counts bytes never sent (``stream_send_buffered(sid, unsent=True)``); what is in
flight is bounded by the congestion window and the client's flow-control credit (4 MB per stream
by default), so memory per response stays bounded.
"""

from __future__ import annotations

from simpair import LinkModel
from test_sim_h3_start import H3Pair

from quicreality.aio.server import BODY_CHUNK, STREAM_HIGH_WATER
from quicreality.h3.connection import H3Connection
from quicreality.h3.server import H3FileServer, H3ServerSession, deterministic_bytes
from quicreality.quic import events


class ServerPair(H3Pair):
    """An H3Pair whose server session pumps bodies as :class:`quicreality.aio.server.QuicServer`."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.short_rx: list[float] = []

    def on_client_datagram(self, data: bytes) -> None:
        if not data[0] & 0x80:  # a short header: 1-RTT
            self.short_rx.append(self.now)

    def _flush(self) -> None:
        if self.server is not None and self.session is None:
            self.session = H3ServerSession(H3Connection(self.server, is_client=False),
                                           H3FileServer(None), chunk_size=BODY_CHUNK,
                                           high_water=STREAM_HIGH_WATER)
        super()._flush()


def download(link: LinkModel, size: int, cc: str, seed: int) -> tuple[float, ServerPair]:
    """GET /bytes/<size>; Mbit/s from the first 1-RTT datagram at the client to the last."""
    pair = ServerPair(seed=seed, link=link, server_overrides={"congestion_control_algorithm": cc})
    pair.connect()
    pair.run(lambda: any(isinstance(e, events.HandshakeCompleted) for e in pair.client_events))
    sid = pair.h3client.get(f"/bytes/{size}")
    pair.run(lambda: pair.h3client.all_done, max_time=120, max_steps=20_000_000)
    rec = pair.h3client.responses[sid]
    assert rec.ok and bytes(rec.body) == deterministic_bytes(0, size)
    return size * 8 / (pair.now - pair.short_rx[0]) / 1e6, pair


def test_the_body_pump_lets_the_flight_exceed_its_high_water_on_long_rtt() -> None:
    rate, pair = download(LinkModel(delay=0.750, rate_bps=10e6, queue_bytes=1_875_000),
                          5_000_000, "cubic", seed=4)
    assert pair.server is not None
    peak = pair.server._cc.congestion_window
    print(f"long-rtt H3 5 MB: {rate:.2f} Mbit/s, final cwnd {peak}")
    assert peak > 2 * STREAM_HIGH_WATER  # the window, not the pump, bounded the flight
    assert rate > 2.9  # 2.64 with the old rule


def test_the_body_pump_keeps_bbr_fed_through_losses_on_lossy_wan() -> None:
    rate, _ = download(LinkModel(delay=0.020, loss=0.01, rate_bps=50e6, queue_bytes=250_000),
                       20_000_000, "bbr", seed=1)
    print(f"lossy-wan H3 bbr 20 MB: {rate:.2f} Mbit/s")
    assert rate > 44.5  # 41.1 with the old rule
