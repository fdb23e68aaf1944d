"""Minimised inputs the fuzzers (``python -m quicreality.fuzz``) found, one test per bug.

Each input is replayed through the same harness that found it (documented errors allowed,
anything else a crash), and the expected outcome of the code under test is checked directly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from quicreality.analysis.pcapfile import read_udp
from quicreality.fuzz.harness import run_input
from quicreality.fuzz.targets import get


def replay(target: str, data: bytes) -> None:
    """Run one input through a target's harness; raises Crash on a bug."""
    t = get(target)
    run_input(t, t.setup(), data)


def test_pcap_header_shorter_than_24_bytes_is_not_a_capture(tmp_path: Path) -> None:
    # pcap-loader, atheris: struct.error at pcapfile.py:99 (the link type read past the end)
    data = bytes.fromhex("d4c3b2a1020004000000")
    replay("pcap-loader", data)
    path = tmp_path / "short.pcap"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="truncated"):
        list(read_udp(path))


def test_pcapng_interface_block_without_a_link_type_is_skipped(tmp_path: Path) -> None:
    # pcap-loader: a 13-byte IDB whose body (1 byte) is shorter than its link type (struct.error at the read)
    shb = bytes.fromhex("0a0d0d0a 1c000000 4d3c2b1a 01000000 ffffffffffffffff 1c000000"
                        .replace(" ", ""))
    idb = bytes.fromhex("01000000 0d000000 01 0d000000".replace(" ", ""))
    data = shb + idb
    replay("pcap-loader", data)
    path = tmp_path / "short.pcapng"
    path.write_bytes(data)
    assert list(read_udp(path)) == []
