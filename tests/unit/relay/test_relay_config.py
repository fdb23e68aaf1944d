"""The [relay] TOML table."""

from __future__ import annotations

import pytest

from quicreality.relay.allow import Allowed
from quicreality.relay.config import (
    RelayConfig,
    RelayConfigError,
    parse_relay_table,
    parse_relay_toml,
    parse_size,
)
from quicreality.relay.protocol import Destination


def test_full_table() -> None:
    cfg = parse_relay_toml("""
[reality]
private_key = "ignored here"

[relay]
allow = ["127.0.0.1:5201", "[::1]:*"]
connect_timeout_ms = 2500
udp_idle_timeout_ms = 30000
max_udp_flows = 10
stream_window = "1M"
connection_window = 8388608
send_high_water = "512K"
send_low_water = "128KiB"
write_high_water = "1MB"
write_low_water = 1024
udp_queue_limit = 100
max_streams = 300
""")
    assert cfg.allow.decide(Destination("127.0.0.1", 5201)) == Allowed("127.0.0.1")
    assert (cfg.connect_timeout, cfg.udp_idle_timeout, cfg.max_udp_flows) == (2.5, 30.0, 10)
    assert (cfg.stream_window, cfg.connection_window) == (1 << 20, 8 << 20)
    assert (cfg.send_high_water, cfg.send_low_water) == (512 << 10, 128 << 10)
    assert (cfg.write_high_water, cfg.write_low_water) == (1 << 20, 1024)
    assert cfg.quic_overrides() == {"max_stream_data": 1 << 20, "max_data": 8 << 20,
                                    "max_streams_bidi": 300}


def test_missing_table_allows_nothing() -> None:
    cfg = parse_relay_toml("[reality]\nx = 1\n")
    assert cfg == RelayConfig()
    assert cfg.allow.rules == ()


@pytest.mark.parametrize(("table", "field"), [
    ({"allow": "127.0.0.1:1"}, "allow"),
    ({"allow": ["127.0.0.1:1", "*:*"]}, "allow[1]"),
    ({"alow": []}, "alow"),
    ({"stream_window": "lots"}, "stream_window"),
    ({"stream_window": 10}, "stream_window"),
    ({"stream_window": "4M", "connection_window": "1M"}, "connection_window"),
    ({"send_high_water": 100, "send_low_water": 200}, "send_low_water"),
    ({"connect_timeout_ms": 1.5}, "connect_timeout_ms"),
    ({"connect_timeout_ms": 0}, "connect_timeout_ms"),
    ({"max_udp_flows": True}, "max_udp_flows"),
    ({"max_udp_flows": 0}, "max_udp_flows"),
])
def test_errors_name_the_field(table: dict[str, object], field: str) -> None:
    with pytest.raises(RelayConfigError) as info:
        parse_relay_table(table)
    assert info.value.field == field
    assert str(info.value).startswith(f"[relay] {field}:")


def test_bad_toml_and_bad_table() -> None:
    with pytest.raises(RelayConfigError, match="TOML"):
        parse_relay_toml("[relay\n")
    with pytest.raises(RelayConfigError, match="table"):
        parse_relay_toml("relay = 3\n")


def test_parse_size() -> None:
    assert [parse_size(v) for v in (0, 5, "5", "2K", "2k", "3M", "1G", "4MiB", "8KB")] == [
        0, 5, 5, 2048, 2048, 3 << 20, 1 << 30, 4 << 20, 8192]
    for bad in (-1, "1T", "", "M", 1.5, True):
        with pytest.raises(ValueError):
            parse_size(bad)  # type: ignore[arg-type]
