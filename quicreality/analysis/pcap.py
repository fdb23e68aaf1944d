"""Decrypted QUIC captures → per-packet and per-frame tables (the public loader API).

:func:`load_pcap` reads through the rep folder's derived cache (:mod:`.capcache`); the tshark
work itself (field extraction, coalesced-packet re-reads, frame reassembly) and its theory of
operation live in :mod:`.tshark_tables`, whose public names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .capcache import cached_pcap
from .tshark_tables import (
    FIELDS,
    LONG_TYPES,
    TCP_COLUMNS,
    TCP_FIELDS,
    PcapTables,
    load_capture,
    load_pcap_raw,
    tcp_frame,
    varint_size,
)

__all__ = ["FIELDS", "LONG_TYPES", "TCP_COLUMNS", "TCP_FIELDS", "PcapTables", "load_capture",
           "load_pcap", "load_pcap_raw", "tcp_frame", "varint_size"]


def load_pcap(pcap: str | Path, *, keylog: str | Path | None = None,
              server_port: int | None = None, decode_as: Iterable[str] = (),
              timeout: float = 600.0) -> PcapTables:
    """Per-packet and per-frame tables of the QUIC traffic in ``pcap``.

    Inside a rep folder the tables are read from (and, the first time, written to) its derived
    cache (:mod:`.cache`): a capture that is unchanged — or was pruned after it was derived —
    is not run through tshark again.

    Args:
        pcap: A pcap/pcapng (with injected secrets, or give ``keylog``).
        keylog: NSS key log for decryption (not needed with injected secrets).
        server_port: UDP port of the server; inferred from the first Initial if None.
        decode_as: tshark ``-d`` rules, e.g. ``("udp.port==4433,quic",)``.
        timeout: tshark timeout in seconds.

    Returns:
        :class:`PcapTables`; times are ``time_epoch`` and ``time_s`` (from the first packet).
    """
    return cached_pcap(pcap, keylog=keylog, server_port=server_port, decode_as=decode_as,
                       timeout=timeout)
