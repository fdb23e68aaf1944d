"""Unit tests of netem/tbf argv generation (no root)."""

from __future__ import annotations

import pytest

from quicreality.scenarios.model import Blackhole, GilbertElliott, Impairment
from quicreality.scenarios.netem import (
    NETEM_LIMIT,
    NetemUnsupported,
    blackhole_schedule,
    netem_args,
    qdisc_argvs,
    tbf_args,
    teardown_argv,
)


def test_delay_loss_rate_become_netem_root_and_tbf_child() -> None:
    argvs = qdisc_argvs("qrlink", Impairment(delay_ms=20, rate_mbit=50, queue_bytes=250_000,
                                             loss=0.01))
    assert argvs == [
        ["tc", "qdisc", "replace", "dev", "qrlink", "root", "handle", "1:", "netem",
         "limit", str(NETEM_LIMIT), "delay", "20ms", "loss", "random", "1%"],
        ["tc", "qdisc", "replace", "dev", "qrlink", "parent", "1:1", "handle", "10:", "tbf",
         "rate", "50000kbit", "burst", "6250", "limit", "250000"],
    ]


def test_no_rate_means_no_tbf() -> None:
    assert len(qdisc_argvs("d", Impairment(delay_ms=5))) == 1
    assert tbf_args(Impairment()) is None


def test_packet_queue_converted_to_bytes_with_link_layer() -> None:
    args = tbf_args(Impairment(rate_mbit=10, queue_packets=25))
    assert args is not None
    assert args[args.index("limit") + 1] == str(25 * 1514)
    assert args[args.index("burst") + 1] == str(2 * 1514)


def test_jitter_without_reorder_sets_netem_rate_for_fifo() -> None:
    a = netem_args(Impairment(delay_ms=10, jitter_ms=3, rate_mbit=20, queue_packets=10))
    assert a[a.index("delay"):a.index("delay") + 3] == ["delay", "10ms", "3ms"]
    assert a[-2:] == ["rate", "20000kbit"]
    assert netem_args(Impairment(delay_ms=10, jitter_ms=3))[-2:] == ["rate", "10gbit"]
    assert "rate" not in netem_args(Impairment(delay_ms=10, jitter_ms=3, reorder=True))


def test_gilbert_elliott_folds_in_random_loss() -> None:
    a = netem_args(Impairment(loss=0.1, gilbert_elliott=GilbertElliott(p=0.01, r=0.5,
                                                                        loss_bad=0.5)))
    i = a.index("gemodel")
    assert a[i + 1:i + 5] == ["1%", "50%", "55%", "10%"]


def test_duplicate_and_corrupt() -> None:
    a = netem_args(Impairment(duplicate=0.001, corrupt=0.02))
    assert a[a.index("duplicate") + 1] == "0.1%"
    assert a[a.index("corrupt") + 1] == "2%"
    with pytest.raises(NetemUnsupported, match="corrupt_fix_checksum"):
        netem_args(Impairment(corrupt=0.1, corrupt_fix_checksum=True))


def test_blackhole_schedule_toggles_loss_100() -> None:
    sched = blackhole_schedule("qrlink", Impairment(delay_ms=15,
                                                    blackhole=Blackhole(on_s=5, off_s=2, repeat=2)))
    assert [t for t, _ in sched] == [5, 7, 12, 14]
    assert sched[0][1][:9] == ["tc", "qdisc", "change", "dev", "qrlink", "root", "handle", "1:",
                               "netem"]
    assert sched[0][1][-3:] == ["loss", "random", "100%"]
    assert "loss" not in sched[1][1]
    assert blackhole_schedule("x", Impairment()) == []


def test_teardown_argv() -> None:
    assert teardown_argv("qrlink") == ["tc", "qdisc", "del", "dev", "qrlink", "root"]
