"""Two catalog links on virtual time with the runner's transfer sizes and its goodput definition
(file bytes over the time from the first response byte to the last; docs/scenarios.md).

lossy-wan with ``--congestion bbr`` (50 Mbit/s, 20 ms one way, 1 % random loss each way, 250 KB
queue, 20 MB): 46.0 Mbit/s (seeds 1-4: 45.5-46.1), 92 % of the link, where the runner's TCP BBR
row (iperf3 for 10 s) had 46.6. The "38.5 Mbit/s, 84 %" of docs/quic.md is a 5 MiB transfer
timed from the request (Startup, which overflows the 250 KB queue, is a fifth of it); 5 MiB timed
from the first byte gives 40.9, 20 MB from the request 45.2. So on virtual time our BBR transport
leaves no 10 % gap on this link. The HTTP/3 server's body pump did (41.1 Mbit/s through it,
fixed: test_sim_h3_transfer.py); the rest of what the runner shows (39.4 on a quiet machine,
31.2 at load 2-6) is the real machine's, where our server and client need ~0.7 and ~0.5 of a
core at this rate (virtual time: 2.4 and 1.6 CPU-s per 3.5 s transfer, load 2.5) next to an
emulator on the same two cores.

interop-goodput (10 Mbit/s, 15 ms, 25(+1)-packet queue, 10 MiB, CUBIC): 9.55 Mbit/s, the
runner's quic-go figure (9.56); ours there measured 9.35.

lossy-wan with the default controller (20 MB): RFC 9438's Reno-friendly AIMD(0.53, 0.7)
(``cubic-rfc9438``) gave 3.25-4.04 Mbit/s over 8 runs (median 3.50; each process draws a new
certificate, so the handshake's sizes and with them the loss pattern differ between runs), the
AIMD(1, 0.7) of the default ``cubic`` 4.31-4.66 (median 4.50), where the runner's quic-go had
4.37 (docs/quic.md, "CUBIC's Reno-friendly increase").
"""

from __future__ import annotations

from simpair import LinkModel
from test_sim_pair import EchoPair, timed_response


def goodput(cc: str, link: LinkModel, size: int, seed: int = 1) -> float:
    """Mbit/s from the first response byte at the client to the last, byte-exact."""
    pair = EchoPair(seed=seed, link=link, server_overrides={"congestion_control_algorithm": cc})
    return size * 8 / timed_response(pair, size) / 1e6


def test_bbr_keeps_92_percent_of_the_lossy_wan_link_on_the_runners_transfer() -> None:
    link = LinkModel(delay=0.020, loss=0.01, rate_bps=50e6, queue_bytes=250_000)
    rate = goodput("bbr", link, 20_000_000)
    print(f"lossy-wan bbr 20 MB: {rate:.2f} Mbit/s")
    assert rate > 45.0


def test_cubic_fills_the_interop_goodput_link() -> None:
    link = LinkModel(delay=0.015, rate_bps=10e6, queue_bytes=26 * 1480)
    rate = goodput("cubic", link, 10 * 1024 * 1024)
    print(f"interop-goodput cubic 10 MiB: {rate:.2f} Mbit/s")
    assert rate > 9.5


def test_default_cubic_matches_the_loss_based_peers_on_lossy_wan() -> None:
    link = LinkModel(delay=0.020, loss=0.01, rate_bps=50e6, queue_bytes=250_000)
    rates = sorted(goodput("cubic", link, 20_000_000, seed) for seed in (1, 2, 3))
    print(f"lossy-wan cubic 20 MB: {rates} Mbit/s")
    assert rates[1] > 4.2  # cubic-rfc9438: median 3.50, at most 4.04 in 8 runs
