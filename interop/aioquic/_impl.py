"""Which Python QUIC library the peers in this folder run on.

``QR_PEER_IMPL=aioquic`` (the default) runs them on aioquic 1.7.2; ``QR_PEER_IMPL=qh3`` runs the
same scripts on qh3 (PyPI; an aioquic fork whose crypto, TLS and QPACK are in Rust), whose
``asyncio``/``h3``/``quic``/``tls`` modules keep aioquic's names.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

IMPLEMENTATIONS = ("aioquic", "qh3")
NAME = os.environ.get("QR_PEER_IMPL", "aioquic")
if NAME not in IMPLEMENTATIONS:
    raise SystemExit(f"QR_PEER_IMPL={NAME!r}: choose one of {', '.join(IMPLEMENTATIONS)}")
VERSION: str = importlib.import_module(NAME).__version__


def load(module: str) -> ModuleType:
    """``load("quic.configuration")`` -> ``aioquic.quic.configuration`` or ``qh3.quic...``."""
    return importlib.import_module(f"{NAME}.{module}")
