"""QIR scenario stages: the drop list (``droplist``: drop packets by number, per direction) and
capped loss bursts (``drop-rate --burst``)."""

from __future__ import annotations

import pytest
from test_emulator_core import udp_packet

from quicreality.scenarios.emulator.core import DirectionCore
from quicreality.scenarios.model import Impairment, ModelError, impairment_from_dict, impairment_to_dict
from quicreality.scenarios.netem import NetemUnsupported, netem_args


def test_drops_exactly_the_listed_packet_numbers_and_again_after_a_reset() -> None:
    core = DirectionCore(Impairment(drop_packets=(2, 3, 7)), seed=1, direction="to_server")
    kept = [n for n in range(1, 11) if core.submit(udp_packet(n), now=n * 0.001)]
    assert kept == [1, 4, 5, 6, 8, 9, 10]
    assert core.drops["droplist"] == 3 and core.drops["loss"] == 0
    core.reset(seed=2, origin=1.0)  # a re-arm counts from 1 again
    kept = [n for n in range(1, 5) if core.submit(udp_packet(n), now=1 + n * 0.001)]
    assert kept == [1, 4]


def test_model_validates_loads_and_dumps_the_list() -> None:
    imp = impairment_from_dict({"drop_packets": [2, 3, 4]})
    assert imp.drop_packets == (2, 3, 4)
    assert impairment_to_dict(imp) == {"drop_packets": [2, 3, 4]}
    with pytest.raises(ModelError, match="drop_packets"):
        impairment_from_dict({"drop_packets": [0]})
    with pytest.raises(ModelError, match="drop_packets"):
        impairment_from_dict({"drop_packets": "2,3"})


def test_netem_cannot_do_it() -> None:
    with pytest.raises(NetemUnsupported, match="drop_packets"):
        netem_args(Impairment(drop_packets=(1,)))


def test_loss_bursts_are_capped() -> None:
    # 90 % loss: without the cap, long runs of drops; with it, never more than 3 in a row
    capped = DirectionCore(Impairment(loss=0.9, loss_max_burst=3), seed=7, direction="to_server")
    free = DirectionCore(Impairment(loss=0.9), seed=7, direction="to_server")

    def longest_run(core: DirectionCore) -> int:
        run = best = 0
        for n in range(1, 2001):
            if core.submit(udp_packet(n), now=n * 0.001):
                run = 0
            else:
                run += 1
                best = max(best, run)
        return best
    assert longest_run(capped) == 3
    assert longest_run(free) > 10
    assert 0.7 < capped.drops["loss"] / 2000 < 0.8  # 3 of every 4 at most


def test_loss_max_burst_validation_and_netem() -> None:
    with pytest.raises(ModelError, match="loss_max_burst"):
        impairment_from_dict({"loss": 0.3, "loss_max_burst": 0})
    with pytest.raises(NetemUnsupported, match="loss_max_burst"):
        netem_args(Impairment(loss=0.3, loss_max_burst=3))
