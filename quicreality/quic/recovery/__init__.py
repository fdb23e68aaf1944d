"""Loss recovery and congestion control (RFC 9002, RFC 9438).

:mod:`.rtt` (RTT estimation), :mod:`.pacer` (RFC 9002 §7.7) and :mod:`.congestion`
(controllers behind a narrow, name-registered interface) are the pieces that
loss detection (:mod:`.loss`) drives.
"""

from .congestion import CongestionController, create_congestion_controller
from .pacer import Pacer
from .rtt import K_GRANULARITY, K_INITIAL_RTT, RttEstimator

__all__ = [
    "K_GRANULARITY",
    "K_INITIAL_RTT",
    "CongestionController",
    "Pacer",
    "RttEstimator",
    "create_congestion_controller",
]
