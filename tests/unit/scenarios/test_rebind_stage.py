"""The emulator's NAT rebinding stage and the ``[link.rebind]`` model (QIR rebind-port/-addr)."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from quicreality.scenarios.emulator.rebind_stage import RebindStage, checksum_adjust
from quicreality.scenarios.model import (
    DEFAULT_REBIND_ADDRESSES,
    Link,
    ModelError,
    Rebind,
    link_to_dict,
    load_link,
)

CLIENT = ("10.99.1.2", 40000)
SERVER = ("10.99.2.2", 443)


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp4(src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> bytes:
    s, d = ipaddress.ip_address(src[0]).packed, ipaddress.ip_address(dst[0]).packed
    length = 8 + len(payload)
    udp = struct.pack("!HHHH", src[1], dst[1], length, 0) + payload
    uc = csum(s + d + struct.pack("!BBH", 0, 17, length) + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", uc) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 1, 0x4000, 64, 17, 0, s, d)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return ip + udp


def udp6(src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> bytes:
    s, d = ipaddress.ip_address(src[0]).packed, ipaddress.ip_address(dst[0]).packed
    length = 8 + len(payload)
    udp = struct.pack("!HHHH", src[1], dst[1], length, 0) + payload
    uc = csum(s + d + struct.pack("!IxxxB", length, 17) + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", uc) + udp[8:]
    return struct.pack("!IHBB16s16s", 6 << 28, length, 17, 64, s, d) + udp


def parse(pkt: bytes) -> tuple[tuple[str, int], tuple[str, int], bool]:
    """(source, destination, every checksum valid) of an IPv4/IPv6 UDP packet."""
    if pkt[0] >> 4 == 4:
        s, d, udp = pkt[12:16], pkt[16:20], pkt[20:]
        pseudo = s + d + struct.pack("!BBH", 0, 17, len(udp))
        ok = csum(pkt[:20]) == 0
    else:
        s, d, udp = pkt[8:24], pkt[24:40], pkt[40:]
        pseudo = s + d + struct.pack("!IxxxB", len(udp), 17)
        ok = True
    ok = ok and csum(pseudo + udp) == 0
    sp, dp = struct.unpack("!HH", udp[:4])
    return (str(ipaddress.ip_address(s)), sp), (str(ipaddress.ip_address(d)), dp), ok


def test_checksum_adjust_matches_a_full_recompute() -> None:
    data = bytes(range(40))
    new = data[:10] + b"\xab\xcd\x12\x34" + data[14:]
    assert checksum_adjust(csum(data), data[10:14], new[10:14]) == csum(new)


def test_port_rebinding_translates_both_ways_and_drops_the_old_mapping() -> None:
    nat = RebindStage(Rebind(kind="port", first_s=1.0, interval_s=5.0), seed=7, origin=100.0)
    out = udp4(CLIENT, SERVER, b"hello")
    assert nat.to_server(out, 100.5) == out  # before the first rebinding: untouched
    back = udp4(SERVER, CLIENT, b"reply")
    assert nat.to_client(back, 100.5) == back
    moved = nat.to_server(out, 101.0)
    src, dst, ok = parse(moved)
    assert ok and dst == SERVER and src[0] == CLIENT[0] and src[1] != CLIENT[1]
    first = src
    translated = nat.to_client(udp4(SERVER, first, b"reply"), 101.1)
    assert translated is not None
    assert parse(translated) == (SERVER, CLIENT, True)
    second, _, ok = parse(nat.to_server(out, 106.0))  # the next epoch: a new port again
    assert ok and second[1] not in (CLIENT[1], first[1])
    assert nat.to_client(udp4(SERVER, first, b"late"), 106.1) is None  # the NAT forgot it
    assert nat.stats()["rebinds"] == 2 and nat.stats()["dropped_stale"] == 1


def test_the_untranslated_epoch_0_address_is_forgotten_at_the_first_rebinding() -> None:
    # QIR's NAT drops what the server still sends to the client's original binding; a server
    # that never follows the client (quic-go 0.29) must not keep reaching it there
    nat = RebindStage(Rebind(kind="port", first_s=1.0, interval_s=5.0), seed=7, origin=100.0)
    back = udp4(SERVER, CLIENT, b"reply")
    assert nat.to_client(back, 100.5) == back  # epoch 0: the client's own address
    nat.to_server(udp4(CLIENT, SERVER, b"hello"), 101.0)
    assert nat.to_client(back, 101.1) is None
    assert nat.stats()["dropped_stale"] == 1


def test_address_rebinding_uses_the_pool_and_fixes_the_ip_checksum() -> None:
    pool = ("10.99.1.3", "10.99.1.4")
    nat = RebindStage(Rebind(kind="addr", first_s=0.0, interval_s=1.0, addresses=pool), 1, 0.0)
    out = udp4(CLIENT, SERVER, b"x" * 101)  # odd payload length
    seen = []
    for t in (0.1, 1.1, 2.1):
        src, dst, ok = parse(nat.to_server(out, t))
        assert ok and dst == SERVER
        seen.append(src[0])
        back = nat.to_client(udp4(SERVER, src, b"y" * 33), t)
        assert back is not None and parse(back) == (SERVER, CLIENT, True)
    assert seen == ["10.99.1.3", "10.99.1.4", "10.99.1.3"]


def test_same_seed_same_ports_other_seed_other_ports() -> None:
    def ports(seed: int) -> list[int]:
        nat = RebindStage(Rebind(first_s=0.0, interval_s=1.0), seed, 0.0)
        return [parse(nat.to_server(udp4(CLIENT, SERVER, b"p"), t))[0][1] for t in (0, 1, 2, 3)]

    assert ports(3) == ports(3) and ports(3) != ports(4)


def test_ipv6_udp_checksum_stays_valid() -> None:
    c6, s6 = ("fd00:99:1::2", 5000), ("fd00:99:2::2", 443)
    nat = RebindStage(Rebind(first_s=0.0), 2, 0.0)
    src, dst, ok = parse(nat.to_server(udp6(c6, s6, b"v6 payload"), 0.5))
    assert ok and dst == s6 and src[0] == c6[0] and src[1] != c6[1]
    back = nat.to_client(udp6(s6, src, b"answer"), 0.6)
    assert back is not None and parse(back) == (s6, c6, True)


def test_non_udp_passes_untouched() -> None:
    nat = RebindStage(Rebind(first_s=0.0), 2, 0.0)
    tcp = bytearray(udp4(CLIENT, SERVER, b"z" * 20))
    tcp[9] = 6
    assert nat.to_server(bytes(tcp), 1.0) == bytes(tcp)


def test_link_rebind_table_loads_and_round_trips() -> None:
    link = load_link({"delay_ms": 15, "rebind": {"kind": "addr", "first_s": 1, "interval_s": 5}})
    assert link.rebind == Rebind(kind="addr", first_s=1, interval_s=5)
    assert link.rebind.addresses == DEFAULT_REBIND_ADDRESSES
    assert link.to_server.delay_ms == 15  # rebind is not an impairment key
    again = load_link(link_to_dict(link))
    assert again == link
    assert "rebind" not in link_to_dict(Link())


@pytest.mark.parametrize(("table", "field"), [
    ({"kind": "both"}, "link.rebind.kind"),
    ({"first_s": -1}, "link.rebind.first_s"),
    ({"addresses": ["nope"]}, "link.rebind.addresses[0]"),
    ({"kind": "addr", "addresses": []}, "link.rebind.addresses"),
    ({"every": 3}, "link.rebind.every"),
])
def test_bad_rebind_tables_name_the_field(table: dict[str, object], field: str) -> None:
    with pytest.raises(ModelError) as err:
        load_link({"rebind": table})
    assert err.value.field_path == field
