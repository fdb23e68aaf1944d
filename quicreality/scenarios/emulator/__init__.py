"""Userspace link emulator: a seeded pure core plus a TUN relay I/O loop.

Run as its own process: ``python -m quicreality.scenarios.emulator --config FILE.json``.
"""

from .core import DROP_CAUSES, DirectionCore, corrupt_packet

__all__ = ["DROP_CAUSES", "DirectionCore", "corrupt_packet"]
