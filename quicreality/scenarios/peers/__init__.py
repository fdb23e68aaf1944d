"""Interop peers: pure argv builders / output parsers per peer, registered by name.

>>> from quicreality.scenarios.peers import get_peer, peer_names
>>> sorted(peer_names())
['aioquic', 'chromium', 'curl', 'ngtcp2', 'ours', 'qh3', 'quicgo']

See :mod:`.base` for the request/command/result types, :mod:`.paths` for where peers are
installed (by ``scripts/setup.sh``), :mod:`.process` to run them, :mod:`.certs` for a test PKI
and :mod:`.iperf3` for TCP/UDP baselines.
"""

from __future__ import annotations

from . import aioquic_peer, chromium, curl, ngtcp2, ours, quicgo
from .base import (
    Command,
    DownloadRequest,
    PeerSpec,
    ServeRequest,
    TransferResult,
    Unsupported,
)
from .paths import PeerNotInstalled

_REGISTRY: dict[str, PeerSpec] = {}


def register_peer(spec: PeerSpec) -> None:
    """Add (or replace) a peer under ``spec.name``."""
    _REGISTRY[spec.name] = spec


def get_peer(name: str) -> PeerSpec:
    """The peer registered as ``name``; ``KeyError`` lists the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown peer {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def peer_names() -> list[str]:
    """Registered peer names."""
    return list(_REGISTRY)


for _mod in (curl, ngtcp2, quicgo, aioquic_peer, ours, chromium):
    register_peer(_mod.SPEC)
register_peer(aioquic_peer.QH3_SPEC)

__all__ = [
    "Command",
    "DownloadRequest",
    "PeerNotInstalled",
    "PeerSpec",
    "ServeRequest",
    "TransferResult",
    "Unsupported",
    "get_peer",
    "peer_names",
    "register_peer",
]
