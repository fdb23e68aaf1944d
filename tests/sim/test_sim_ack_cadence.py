"""A download's client acknowledges every second packet on lossy-wan (RFC 9000 §13.2.2).

On the runner (docs/scenarios.md, "lossy-wan with the default controller: what the client
costs"), our client sent one ACK per 2.2-2.5 data datagrams (compiled; 2.5-2.7 pure Python)
where quic-go's sent one per 2.04-2.16: ours reads a batch of datagrams and acknowledges it
with one ACK frame once processed, so a client that falls behind acknowledges more per ACK
(allowed: the ACK is never later than the packets' processing). On virtual time every datagram
is processed alone, and the policy itself gives one ACK per two data datagrams, with one at once
for each gap a loss leaves (§13.2.1) and the delayed-ACK timer only for a flight's lone last
packet. The goodput gap to quic-go on the runner is therefore not the ACK policy.
"""

from __future__ import annotations

from simpair import LinkModel
from test_sim_pair import EchoPair, timed_response

LOSSY_WAN = LinkModel(delay=0.020, loss=0.01, rate_bps=50e6, queue_bytes=250_000)


class TimerCountingPair(EchoPair):
    """Counts the steps at which the client's timer was due (the connection object may be
    compiled, so its methods cannot be wrapped)."""

    client_timers: int = 0

    def step(self) -> bool:
        due = self.client.get_timer()
        more = super().step()
        if due is not None and self.now >= due:
            self.client_timers += 1
        return more


def test_the_client_acknowledges_every_second_datagram_on_lossy_wan() -> None:
    pair = TimerCountingPair(seed=1, link=LOSSY_WAN)
    timed_response(pair, 5_000_000)  # byte-exact
    timers = pair.client_timers
    to_client, to_server = pair.datagrams["to_client"], pair.datagrams["to_server"]
    ratio = to_client / to_server
    print(f"server datagrams {to_client}, client datagrams {to_server}: {ratio:.3f} per ACK; "
          f"client timer calls {timers}")
    # every second one, plus one at once per gap (about 1 % of them) and a few lone packets
    assert 1.9 <= ratio <= 2.05
    # the delayed-ACK timer (max_ack_delay 25 ms) fires for few of the client's datagrams
    assert timers < to_server / 10
