"""BBR v1 (draft-cardwell-iccrg-bbr-congestion-control-00) on synthetic ACK streams.

Most tests drive the controller through :class:`Path`, a small virtual-time model of one sender
behind a fixed-rate bottleneck; a few feed hand-made ACKs. Nothing here reads a clock.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random

import pytest

from quicreality.quic.recovery.congestion import (
    CONGESTION_CONTROLLERS,
    create_congestion_controller,
    minimum_window,
)
from quicreality.quic.recovery.congestion.bbr import (
    BBR_HIGH_GAIN,
    BBR_PACING_GAIN_CYCLE,
    BbrCongestionController,
    BbrState,
    WindowedMaxFilter,
    send_quantum,
)
from quicreality.quic.recovery.loss import SPACE_APPLICATION, LossRecovery, SentPacket
from quicreality.quic.recovery.pacer import PACER_TICK, Pacer
from quicreality.quic.recovery.rtt import RttEstimator
from quicreality.wire.rangeset import RangeSet

MDS = 1200
MBIT = 1e6 / 8  # bytes per second in one Mbit/s


class Path:
    """One sender driving a controller over a fixed-rate bottleneck on virtual time.

    Full-sized packets are paced at the controller's ``pacing_rate`` (unpaced while ``None``) and
    sent while ``bytes_in_flight + MDS <= congestion_window``. The bottleneck serialises at
    ``rate`` bytes/s behind an unbounded queue; propagation takes ``delay`` (plus
    ``extra_delay``) each way; ``loss`` drops packets at random before the queue. The receiver
    acknowledges every packet at once; a packet is lost once a packet 3 numbers later is
    acknowledged (RFC 9002 §6.1.1), or when nothing else is left to be acknowledged. With
    ``app_rate`` set the application supplies only that many bytes/s, and the sender reports
    ``app_limited`` when it stops with room in the window and no pacing wait (RFC 9002 §7.8).
    """

    def __init__(self, cc: BbrCongestionController | object, *, rate: float = 50 * MBIT,
                 delay: float = 0.020, loss: float = 0.0, seed: int = 1) -> None:
        self.cc: object = cc
        self.rate = rate
        self.delay = delay
        self.extra_delay = 0.0
        self.loss = loss
        self.app_rate: float | None = None
        self._rand = random.Random(seed)
        self.rtt = RttEstimator()
        self.now = 0.0
        self.inflight = 0
        self.sent: dict[int, float] = {}
        self._pn = 0
        self._link_free = 0.0
        self._acks: list[tuple[float, int]] = []
        self._next_send = 0.0
        self._budget = 0.0
        self.app_limited = False
        self.acked_bytes = 0
        self.states: list[tuple[float, BbrState]] = []
        self.samples: list[tuple[float, int, float]] = []  # (now, cwnd, btl_bw) after each ACK

    def _send(self) -> None:
        cc: object = self.cc
        cwnd: int = cc.congestion_window  # type: ignore[attr-defined]
        while self.inflight + MDS <= cwnd and self.now >= self._next_send:
            if self.app_rate is not None and self._budget < MDS - 1e-6:
                self.app_limited = True
                return
            self._budget -= MDS if self.app_rate is not None else 0
            pn = self._pn
            self._pn += 1
            self.inflight += MDS
            self.sent[pn] = self.now
            cc.on_packet_sent(now=self.now, sent_bytes=MDS,  # type: ignore[attr-defined]
                              bytes_in_flight=self.inflight)
            rate = getattr(cc, "pacing_rate", None)
            if rate:
                self._next_send = max(self._next_send, self.now) + MDS / rate
            if self._rand.random() >= self.loss:
                depart = max(self.now, self._link_free) + MDS / self.rate
                self._link_free = depart
                heapq.heappush(self._acks, (depart + 2 * (self.delay + self.extra_delay), pn))
        self.app_limited = self.now >= self._next_send and self.inflight + MDS <= cwnd

    def _declare_lost(self, pns: list[int]) -> None:
        lost_bytes = 0
        largest = 0.0
        for pn in pns:
            largest = max(largest, self.sent.pop(pn))
            lost_bytes += MDS
        self.inflight -= lost_bytes
        self.cc.on_congestion_event(now=self.now, largest_lost_sent_time=largest,  # type: ignore[attr-defined]
                                    lost_bytes=lost_bytes, bytes_in_flight=self.inflight)

    def _on_ack(self, pn: int) -> None:
        sent_time = self.sent.pop(pn, None)
        if sent_time is None:
            return
        self.inflight -= MDS
        self.acked_bytes += MDS
        self.rtt.update(self.now - sent_time, 0.0, handshake_confirmed=True, max_ack_delay=0.025)
        lost = []
        for old in self.sent:
            if old >= pn - 3:
                break
            lost.append(old)
        if lost:
            self._declare_lost(lost)
        cc = self.cc
        cc.on_packets_acked(now=self.now, acked_bytes=MDS,  # type: ignore[attr-defined]
                            largest_acked_sent_time=sent_time, rtt=self.rtt,
                            bytes_in_flight=self.inflight, app_limited=self.app_limited)
        if isinstance(cc, BbrCongestionController):
            if not self.states or self.states[-1][1] is not cc.state:
                self.states.append((self.now, cc.state))
            self.samples.append((self.now, cc.congestion_window, cc.btl_bw))

    def run(self, duration: float) -> None:
        """Advance virtual time by ``duration`` seconds."""
        end = self.now + duration
        while self.now < end:
            self._send()
            cwnd: int = self.cc.congestion_window  # type: ignore[attr-defined]
            t = self._acks[0][0] if self._acks else math.inf
            if self.inflight + MDS <= cwnd:
                if self.now < self._next_send:
                    t = min(t, self._next_send)
                elif self.app_rate is not None:
                    t = min(t, self.now + (MDS - self._budget) / self.app_rate)
            if t == math.inf:
                # Everything outstanding was dropped: a PTO-like timeout declares it lost.
                self.now += 3 * self.rtt.smoothed_rtt
                self._declare_lost(list(self.sent))
                continue
            t = min(t, end)
            if self.app_rate is not None:
                self._budget = min(self._budget + self.app_rate * (t - self.now), 16 * MDS)
            self.now = t
            while self._acks and self._acks[0][0] <= self.now:
                self._on_ack(heapq.heappop(self._acks)[1])

    def state_order(self) -> list[BbrState]:
        """States visited, in order."""
        return [s for _, s in self.states]


def bbr(seed: int = 0) -> BbrCongestionController:
    return BbrCongestionController(max_datagram_size=MDS, seed=seed)


# ------------------------------------------------------------------- registry


def test_bbr_is_registered_and_starts_in_startup() -> None:
    assert "bbr" in CONGESTION_CONTROLLERS
    cc = create_congestion_controller("bbr", max_datagram_size=MDS)
    assert isinstance(cc, BbrCongestionController)
    assert cc.state is BbrState.STARTUP
    assert cc.pacing_gain == cc.cwnd_gain == pytest.approx(2 / math.log(2))
    assert cc.congestion_window == 10 * MDS and cc.ssthresh is None and cc.pacing_rate is None


# ------------------------------------------------------------ state machine


def test_startup_then_drain_then_probe_bw() -> None:
    cc = bbr()
    path = Path(cc)
    path.run(2.0)
    assert path.state_order() == [BbrState.STARTUP, BbrState.DRAIN, BbrState.PROBE_BW]
    assert cc.filled_pipe
    drain_start = path.states[1][0]
    probe_bw_start = path.states[2][0]
    # Doubling from 10 packets to a 250 kB BDP takes ~5 rounds plus 3 to see the plateau; DRAIN
    # lasts about one round (BBR §4.3.3).
    assert 0.2 < drain_start < 0.8
    assert 0.0 < probe_bw_start - drain_start < 0.15
    assert cc.pacing_gain in BBR_PACING_GAIN_CYCLE and cc.cwnd_gain == 2.0


def test_probe_bw_gain_cycle_advances_once_per_min_rtt() -> None:
    cc = bbr()
    path = Path(cc, rate=10 * MBIT, delay=0.010)
    path.run(1.0)
    assert cc.state is BbrState.PROBE_BW
    seen = []
    for _ in range(40):
        path.run(0.005)
        if not seen or seen[-1] != cc.cycle_index:
            seen.append(cc.cycle_index)
    # 0.2 s at a 20 ms min RTT: about 9 phases, in cycle order.
    assert 7 <= len(seen) <= 11
    for a, b in itertools.pairwise(seen):
        assert b == (a + 1) % len(BBR_PACING_GAIN_CYCLE)


def test_probe_rtt_after_10s_without_a_new_min_rtt() -> None:
    cc = bbr()
    path = Path(cc, rate=10 * MBIT, delay=0.010)
    path.run(1.0)
    assert cc.state is BbrState.PROBE_BW and cc.rt_prop == pytest.approx(0.021, abs=0.002)
    # The route gets 5 ms longer each way: no sample reaches the old minimum again.
    path.extra_delay = 0.005
    last_min = cc.rt_prop_stamp
    path.run(8.5)
    assert cc.state is BbrState.PROBE_BW and cc.rt_prop_stamp == last_min
    path.run(3.0)
    probe_rtt = [(t, s) for t, s in path.states if s is BbrState.PROBE_RTT]
    assert len(probe_rtt) == 1
    entered = probe_rtt[0][0]
    # RTpropFilterLen after the last minimum was seen (BBR §4.1.2.3), at the next ACK.
    assert 10.0 < entered - last_min < 10.01
    during = [cwnd for t, cwnd, _ in path.samples if entered <= t < entered + 0.2]
    assert during and max(during) == 4 * MDS  # BBRMinPipeCwnd (BBR §4.3.5)
    after = path.states[path.states.index((entered, BbrState.PROBE_RTT)) + 1]
    assert after[1] is BbrState.PROBE_BW
    assert 0.2 <= after[0] - entered < 0.35  # 200 ms at the low window plus a round
    assert cc.rt_prop == pytest.approx(0.031, abs=0.002)  # the new path's RTT


def test_windowed_max_filter_expires_after_ten_rounds() -> None:
    f = WindowedMaxFilter(10)
    f.update(100.0, 1)
    for r in range(2, 11):
        f.update(50.0 + r, r)
    assert f.get() == 100.0
    f.update(10.0, 11)  # round 1 is now 10 rounds old
    assert f.get() == 60.0
    f.update(200.0, 11)
    assert f.get() == 200.0


# ------------------------------------------------------------------- model


@pytest.mark.parametrize("rate_mbit", [10, 50])
def test_bandwidth_estimate_converges_to_the_bottleneck_rate(rate_mbit: int) -> None:
    cc = bbr()
    path = Path(cc, rate=rate_mbit * MBIT)
    path.run(3.0)
    assert cc.btl_bw == pytest.approx(rate_mbit * MBIT, rel=0.03)
    assert cc.rt_prop == pytest.approx(0.040 + MDS / (rate_mbit * MBIT), abs=0.001)
    # Goodput over the last two seconds is the bottleneck rate.
    before = path.acked_bytes
    path.run(2.0)
    assert (path.acked_bytes - before) / 2.0 == pytest.approx(rate_mbit * MBIT, rel=0.03)


def test_cwnd_is_about_twice_the_bdp_in_probe_bw() -> None:
    cc = bbr()
    path = Path(cc)
    path.run(3.0)
    assert cc.state is BbrState.PROBE_BW
    bdp = 50 * MBIT * 0.040
    # Plus three send quanta: 1 ms at the pacing rate above 24 Mbit/s (BBR §4.2.2).
    assert cc.send_quantum == pytest.approx(cc.pacing_gain * 50 * MBIT * 0.001, rel=0.05)
    assert cc.congestion_window == pytest.approx(2 * bdp + 3 * 50 * MBIT * 0.001, rel=0.05)
    # Pacing at gain 1 keeps about one BDP in flight, so the window is not what limits sending.
    path.run(0.5)
    assert path.inflight < 0.8 * cc.congestion_window


def test_random_loss_does_not_shrink_the_window() -> None:
    cc = bbr()
    path = Path(cc, loss=0.01, seed=7)
    path.run(5.0)
    assert cc.state is BbrState.PROBE_BW
    bdp = 50 * MBIT * 0.040
    late = [(cwnd, bw) for t, cwnd, bw in path.samples if t > 2.0]
    assert min(cwnd for cwnd, _ in late) >= 0.95 * 2 * bdp
    assert min(bw for _, bw in late) >= 0.95 * 50 * MBIT
    before = path.acked_bytes
    path.run(2.0)
    assert (path.acked_bytes - before) / 2.0 > 0.9 * 50 * MBIT


def test_random_loss_collapses_cubic_but_not_bbr_on_the_same_path() -> None:
    goodput = {}
    for name in ("bbr", "cubic"):
        path = Path(create_congestion_controller(name, max_datagram_size=MDS), loss=0.01, seed=3)
        path.run(4.0)
        before = path.acked_bytes
        path.run(4.0)
        goodput[name] = (path.acked_bytes - before) / 4.0
    assert goodput["bbr"] > 5 * goodput["cubic"]


def test_a_lost_packet_costs_at_most_its_bytes_and_acks_refill_the_window() -> None:
    cc = bbr()
    path = Path(cc)
    path.run(3.0)
    cwnd = cc.congestion_window
    cc.on_congestion_event(now=path.now, largest_lost_sent_time=path.now - 0.01, lost_bytes=MDS,
                           bytes_in_flight=path.inflight)
    assert cc.congestion_window == cwnd - MDS
    path.run(0.1)
    assert cc.congestion_window == pytest.approx(cwnd, rel=0.01)


def test_app_limited_samples_do_not_lower_the_estimate() -> None:
    cc = bbr()
    path = Path(cc)
    path.run(2.0)
    full = cc.btl_bw
    assert full == pytest.approx(50 * MBIT, rel=0.03)
    path.app_rate = 5 * MBIT  # a tenth of the link, for many more than 10 rounds
    rounds = cc.round_count
    path.run(3.0)
    assert cc.round_count - rounds > 30
    assert cc.btl_bw == full
    assert path.acked_bytes  # the sender kept sending, slowly


def test_app_limited_sample_may_raise_the_estimate() -> None:
    cc = bbr()
    rtt = RttEstimator()
    rtt.update(0.1, 0.0, handshake_confirmed=True, max_ack_delay=0.025)
    for i in range(20):
        cc.on_packet_sent(now=i * 0.001, sent_bytes=MDS, bytes_in_flight=(i + 1) * MDS)
    cc.on_packets_acked(now=0.1, acked_bytes=MDS, largest_acked_sent_time=0.0, rtt=rtt,
                        bytes_in_flight=19 * MDS, app_limited=True)
    assert cc.btl_bw == pytest.approx(MDS / 0.1)


# ---------------------------------------------------------------- congestion


def test_persistent_congestion_cuts_to_the_minimum_window_then_regrows() -> None:
    cc = bbr()
    path = Path(cc)
    path.run(3.0)
    target = cc.congestion_window
    cc.on_congestion_event(now=path.now, largest_lost_sent_time=path.now, lost_bytes=10 * MDS,
                           bytes_in_flight=path.inflight)
    cc.on_persistent_congestion(now=path.now)
    assert cc.congestion_window == minimum_window(MDS)  # RFC 9002 §7.6.2
    # What is still in flight does not lift the window back (no conservation floor here).
    cc.on_packets_acked(now=path.now, acked_bytes=MDS, largest_acked_sent_time=path.now - 0.04,
                        rtt=path.rtt, bytes_in_flight=path.inflight, app_limited=False)
    assert path.inflight > 50 * MDS and cc.congestion_window == 4 * MDS  # BBRMinPipeCwnd
    path.run(0.03)
    assert 4 * MDS <= cc.congestion_window < target  # regrowing, not restored
    path.run(1.0)
    assert cc.congestion_window == pytest.approx(target, rel=0.05)


# -------------------------------------------------------------- determinism


def _trace(seed: int) -> list[tuple[str, int, int, float | None]]:
    cc = bbr(seed)
    path = Path(cc, rate=5 * MBIT, delay=0.005, loss=0.01, seed=11)
    out = []
    for _ in range(60):
        path.run(0.01)
        out.append((cc.state.value, cc.cycle_index, cc.congestion_window, cc.pacing_rate))
    return out


def test_same_seed_same_behaviour() -> None:
    assert _trace(5) == _trace(5)


def test_probe_bw_start_phase_is_seeded_and_never_the_drain_phase() -> None:
    starts = set()
    for seed in range(40):
        cc = bbr(seed)
        path = Path(cc, rate=5 * MBIT, delay=0.005)
        while cc.state is not BbrState.PROBE_BW:
            path.run(0.005)
        starts.add(cc.cycle_index)
    assert 1 not in starts  # never start in the 0.75 phase (BBR §4.3.4.3)
    assert len(starts) >= 5


# ------------------------------------------------------- pacing hand-off


@pytest.mark.parametrize(("rate_mbit", "quantum"), [
    (1.0, MDS), (10.0, 2 * MDS), (100.0, 12_500), (10_000.0, 65_536),
])
def test_send_quantum_depends_on_the_pacing_rate(rate_mbit: float, quantum: int) -> None:
    assert send_quantum(rate_mbit * MBIT, MDS) == quantum  # BBR §4.2.2


def test_pacing_rate_follows_the_gain_and_bandwidth() -> None:
    cc = bbr()
    path = Path(cc)
    path.run(0.005)
    assert cc.pacing_rate is None  # nothing acknowledged yet
    path.run(0.1)
    assert cc.pacing_rate is not None and cc.pacing_rate >= BBR_HIGH_GAIN * 10 * MDS / 0.05
    path.run(3.0)
    assert cc.pacing_rate == pytest.approx(cc.pacing_gain * cc.btl_bw)


def test_pacer_set_rate_keeps_the_burst_allowance() -> None:
    pacer = Pacer(max_datagram_size=MDS)
    pacer.set_rate(rate=50 * MBIT, congestion_window=500_000)
    assert pacer.rate == 50 * MBIT
    assert pacer.capacity == max(10 * MDS, int(50 * MBIT * PACER_TICK))
    pacer.set_rate(rate=1_000_000_000.0, congestion_window=100_000)
    assert pacer.capacity == 100_000  # capped by the window
    pacer.set_rate(rate=0.0, congestion_window=100_000)
    assert pacer.next_send_time(0.0) is None  # non-positive: unpaced


def test_pacer_update_rate_is_set_rate_at_five_quarters_cwnd_per_srtt() -> None:
    a, b = Pacer(max_datagram_size=MDS), Pacer(max_datagram_size=MDS)
    a.update_rate(congestion_window=120_000, smoothed_rtt=0.1)
    b.set_rate(rate=1.25 * 120_000 / 0.1, congestion_window=120_000)
    assert (a.rate, a.capacity) == (b.rate, b.capacity)


def _recovery(name: str) -> LossRecovery:
    r = LossRecovery(congestion=create_congestion_controller(name, max_datagram_size=MDS),
                     rtt=RttEstimator(), pacer=Pacer(max_datagram_size=MDS), max_ack_delay=0.025,
                     is_client=False)
    r.handshake_confirmed = True
    for pn in range(10):
        r.on_packet_sent(SentPacket(pn, SPACE_APPLICATION, 0.0, MDS, True, True, [], "1RTT"))
    r.on_ack_received(SPACE_APPLICATION, RangeSet([range(0, 4)]), 0.0, 0.05)
    return r


def test_loss_recovery_paces_at_the_controllers_rate_when_it_has_one() -> None:
    r = _recovery("bbr")
    rate = r.cc.pacing_rate  # type: ignore[attr-defined]
    assert rate is not None and r.pacer.rate == rate


@pytest.mark.parametrize("name", ["newreno", "cubic"])
def test_loss_recovery_paces_loss_based_controllers_per_rfc9002(name: str) -> None:
    r = _recovery(name)
    assert not hasattr(r.cc, "pacing_rate")
    # Slow start (ssthresh infinite): N = 2, Linux's tcp_pacing_ss_ratio (pacer.py).
    assert r.cc.ssthresh is None
    assert r.pacer.rate == pytest.approx(2.0 * r.cc.congestion_window / r.rtt.smoothed_rtt)
    # After a congestion event (cwnd = ssthresh): N = 1.25 (RFC 9002 §7.7).
    r.on_packet_sent(SentPacket(10, SPACE_APPLICATION, 0.06, MDS, True, True, [], "1RTT"))
    r.on_ack_received(SPACE_APPLICATION, RangeSet([range(8, 11)]), 0.0, 0.11)
    assert r.cc.ssthresh is not None and r.cc.congestion_window >= r.cc.ssthresh
    assert r.pacer.rate == pytest.approx(1.25 * r.cc.congestion_window / r.rtt.smoothed_rtt)
