"""The garbage-collector settings of our long-running processes (server, client, relay).

A QUIC sender keeps every in-flight packet's bookkeeping (``SentPacket``, its delivery handler
tuples, stream frame records) alive for about one RTT. At CPython's default gen-0 threshold of
700, collections run every few hundred datagrams and scan exactly those objects again and again
(and promote them, so gen-1 and gen-2 scan them too). perf on a compiled 300 MB ``bench
transfer`` server put ``gc_collect_main`` and its visitors at about 8 % of the process's CPU.

:func:`tune` therefore, once start-up is done:

* freezes the objects that exist then (modules, classes, the TLS/crypto objects of set-up:
  ``gc.freeze``), so a full collection no longer walks them;
* raises the gen-0 threshold to :data:`GEN0_THRESHOLD`. A 100 MB download at 1200-byte datagrams
  keeps 11,000-17,000 net GC-tracked allocations alive at its peak, so most per-packet objects
  now die before any collection sees them. Cyclic garbage still goes, in larger batches: with
  ``bench connections`` the server's RSS after 10,000 sequential short connections is 1.030x its
  RSS after 1,000 (flat from 3,000 on), against 1.000 with CPython's settings (3,000
  connections). The gen-1 and gen-2 thresholds stay CPython's: larger ones let the cycles of
  closed connections pile up in the older generations.

``QR_GC=default`` leaves CPython's settings alone (for A/B runs, docs/performance.md).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping

__all__ = ["ENV", "GEN0_THRESHOLD", "GEN1_THRESHOLD", "GEN2_THRESHOLD", "tune"]

#: Allocations minus deallocations of GC-tracked objects between two gen-0 collections
#: (CPython's default: 700).
GEN0_THRESHOLD = 50_000
#: Gen-0 collections per gen-1 collection (CPython's default).
GEN1_THRESHOLD = 10
#: Gen-1 collections per gen-2 collection (CPython's default; CPython also waits until the
#: survivors grew by 25 %).
GEN2_THRESHOLD = 10
#: ``QR_GC=default``: keep CPython's collector settings.
ENV = "QR_GC"


def tune(environ: Mapping[str, str] | None = None) -> bool:
    """Freeze the start-up heap and raise the thresholds (see the module docstring).

    Returns False, changing nothing, when ``QR_GC=default`` is set."""
    env = os.environ if environ is None else environ
    if env.get(ENV, "") == "default":
        return False
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
    return True
