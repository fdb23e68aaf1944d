"""Congestion controllers behind the narrow interface in :mod:`.base`.

Importing this package registers ``"newreno"``, ``"cubic"`` (the default, alpha 1 in the
Reno-friendly region), ``"cubic-rfc9438"``, ``"bbr"`` (v1) and ``"bbr3"`` in
:data:`CONGESTION_CONTROLLERS`; build one with :func:`create_congestion_controller`.
"""

from .base import (
    CONGESTION_CONTROLLERS,
    K_INITIAL_WINDOW_PACKETS,
    K_LOSS_REDUCTION_FACTOR,
    K_MINIMUM_WINDOW_PACKETS,
    CongestionController,
    CongestionControllerFactory,
    PacedCongestionController,
    create_congestion_controller,
    initial_window,
    minimum_window,
    register_congestion_controller,
)
from .bbr import BbrCongestionController
from .bbr3 import Bbr3CongestionController
from .cubic import CubicAimd1CongestionController, CubicCongestionController
from .newreno import NewRenoCongestionController

__all__ = [
    "CONGESTION_CONTROLLERS",
    "K_INITIAL_WINDOW_PACKETS",
    "K_LOSS_REDUCTION_FACTOR",
    "K_MINIMUM_WINDOW_PACKETS",
    "Bbr3CongestionController",
    "BbrCongestionController",
    "CongestionController",
    "CongestionControllerFactory",
    "CubicAimd1CongestionController",
    "CubicCongestionController",
    "NewRenoCongestionController",
    "PacedCongestionController",
    "create_congestion_controller",
    "initial_window",
    "minimum_window",
    "register_congestion_controller",
]
