"""``reset()`` on the RTT estimator, the pacer and the controllers that have one leaves the state
of a new object (LossRecovery.reset_path_state uses it; mypyc classes ignore a re-run
``__init__``), compiled or not."""

from __future__ import annotations

from typing import Any

from quicreality.quic.recovery.congestion.cubic import CubicCongestionController
from quicreality.quic.recovery.congestion.newreno import NewRenoCongestionController
from quicreality.quic.recovery.pacer import Pacer
from quicreality.quic.recovery.rtt import RttEstimator


def _names(cls: type) -> tuple[str, ...]:
    # A mypyc class has no __slots__ but lists its attributes in __mypyc_attrs__.
    names = getattr(cls, "__mypyc_attrs__", None) or getattr(cls, "__slots__", ())
    return tuple(sorted(names))


def _state(obj: Any) -> dict[str, Any]:
    names = _names(type(obj))
    assert names, type(obj)
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(obj, name)
        out[name] = _state(value) if _names(type(value)) else value
    return out


def test_rtt_reset_is_a_new_estimator() -> None:
    rtt = RttEstimator(0.1)
    rtt.update(0.05, 0.001, handshake_confirmed=True, max_ack_delay=0.025)
    rtt.update(0.07, 0.002, handshake_confirmed=True, max_ack_delay=0.025)
    rtt.reset(0.2)
    assert _state(rtt) == _state(RttEstimator(0.2))


def test_pacer_reset_is_a_new_pacer() -> None:
    pacer = Pacer(max_datagram_size=1452)
    pacer.update_rate(congestion_window=100_000, smoothed_rtt=0.01)
    pacer.on_packet_sent(now=1.0, sent_bytes=1452)
    pacer.reset(max_datagram_size=1200)
    assert _state(pacer) == _state(Pacer(max_datagram_size=1200))


def _drive(cc: Any) -> None:
    rtt = RttEstimator(0.05)
    rtt.update(0.05, 0.0, handshake_confirmed=True, max_ack_delay=0.025)
    for i in range(50):
        cc.on_packet_sent(now=i * 0.001, sent_bytes=1200, bytes_in_flight=1200)
        cc.on_packets_acked(now=i * 0.001 + 0.05, acked_bytes=1200, largest_acked_sent_time=i * 0.001,
                            rtt=rtt, bytes_in_flight=0, app_limited=False)
    cc.on_congestion_event(now=1.0, largest_lost_sent_time=0.9, lost_bytes=1200, bytes_in_flight=0)


def test_cubic_reset_is_a_new_controller_with_the_same_options() -> None:
    for kwargs in ({}, {"fast_convergence": False, "hystart": False}):
        cc = CubicCongestionController(max_datagram_size=1452, **kwargs)
        _drive(cc)
        cc.reset(max_datagram_size=1200)
        assert _state(cc) == _state(CubicCongestionController(max_datagram_size=1200, **kwargs))


def test_newreno_reset_is_a_new_controller() -> None:
    cc = NewRenoCongestionController(max_datagram_size=1452)
    _drive(cc)
    cc.reset(max_datagram_size=1200)
    assert _state(cc) == _state(NewRenoCongestionController(max_datagram_size=1200))
