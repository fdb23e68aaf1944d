"""Xray encodings (keys, short IDs, versions) and the [reality] TOML table."""

from __future__ import annotations

import base64

import pytest
from reality_helpers import SERVER_PRIVATE, SERVER_PUBLIC

from quicreality.reality.config import (
    XRAY_DEFAULT_MIN_CLIENT_VER,
    RealityConfigError,
    parse_reality_toml,
    parse_target,
)
from quicreality.reality.keys import (
    KeyFormatError,
    b64url_decode,
    b64url_encode,
    clamp_x25519,
    generate_key_pair,
    key_pair_from_private,
    parse_private_key,
    parse_public_key,
    parse_short_id,
    parse_version,
    version_value,
)


def test_b64url_is_rawurl_without_padding() -> None:
    data = bytes([0xFB, 0xFF, 0xFE]) * 11  # exercises - and _
    text = b64url_encode(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert len(b64url_encode(bytes(32))) == 43
    assert b64url_decode(text) == data
    assert b64url_decode(text + "=") == data  # padding tolerated
    with pytest.raises(KeyFormatError):
        b64url_decode(base64.b64encode(data).decode())  # standard alphabet: + and /


def test_xray_style_keys_parse() -> None:
    # What `xray x25519` prints: RawURL of the clamped private key and of its public key.
    pair = key_pair_from_private(SERVER_PRIVATE)
    assert pair.public_key == SERVER_PUBLIC  # X25519 clamps internally: same public key
    assert pair.private_key == clamp_x25519(SERVER_PRIVATE)
    assert parse_private_key(pair.private_key_text) == pair.private_key
    assert parse_public_key(pair.public_key_text) == SERVER_PUBLIC
    with pytest.raises(KeyFormatError, match="32 bytes"):
        parse_public_key(b64url_encode(bytes(31)))


def test_generated_keys_are_clamped() -> None:
    pair = generate_key_pair(lambda n: bytes([0xFF]) * n)
    assert pair.private_key[0] & 7 == 0 and pair.private_key[31] & 0x80 == 0
    assert pair.private_key[31] & 0x40


def test_short_ids_are_padded_on_the_right() -> None:
    assert parse_short_id("") == bytes(8)
    assert parse_short_id("ab") == b"\xab" + bytes(7)
    assert parse_short_id("0123456789abcdef") == bytes.fromhex("0123456789abcdef")
    for bad in ("abc", "0123456789abcdef00", "zz"):
        with pytest.raises(KeyFormatError):
            parse_short_id(bad)


def test_versions() -> None:
    assert parse_version("26.3.27") == (26, 3, 27)
    assert version_value((1, 2, 3)) == 0x010203
    for bad in ("1.2", "1.2.256", "a.b.c", ""):
        with pytest.raises(KeyFormatError):
            parse_version(bad)


GOOD = f"""
[reality]
private_key = "{b64url_encode(SERVER_PRIVATE)}"
server_names = ["www.example.com", ""]
short_ids = ["", "0123456789abcdef"]
target = "127.0.0.1:8443"
max_time_diff_ms = 90000
max_client_ver = "30.0.0"
max_fallback_flows = 100
pending_timeout_ms = 1500

[relay]
anything = "belongs to the relay"
"""


def test_good_config_parses_and_other_tables_are_ignored() -> None:
    cfg = parse_reality_toml(GOOD)
    assert cfg.public_key == SERVER_PUBLIC
    assert cfg.server_names == {"www.example.com", ""}
    assert cfg.short_ids == {bytes(8), bytes.fromhex("0123456789abcdef")}
    assert cfg.target == ("127.0.0.1", 8443)
    assert cfg.max_time_diff_ms == 90000 and cfg.replay_window_ms == 90000
    assert cfg.min_client_ver == XRAY_DEFAULT_MIN_CLIENT_VER
    assert cfg.max_client_ver == (30, 0, 0)
    assert cfg.limits.max_fallback_flows == 100
    assert cfg.limits.pending_timeout == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("private_key = ", 'private_key = "short" #'), "private_key"),
        (('short_ids = ["", ', 'short_ids = ["abc", '), "short_ids"),
        (('target = "127.0.0.1:8443"', 'target = "nowhere"'), "target"),
        (('server_names = ["www.example.com", ""]', "server_names = []"), "server_names"),
        (("max_time_diff_ms = 90000", "max_time_diff_ms = -1"), "max_time_diff_ms"),
        (('max_client_ver = "30.0.0"', 'max_client_ver = "1.0.0"'), "max_client_ver"),
        (("max_fallback_flows = 100", "max_fallback_flows = 0"), "max_fallback_flows"),
        (("max_fallback_flows = 100", "max_fallbak_flows = 100"), "max_fallbak_flows"),
        (("[reality]", "[realty]"), "reality"),
        (("[reality]", "[reality"), "toml"),
    ],
)
def test_invalid_config_names_the_field(change: tuple[str, str], field: str) -> None:
    text = GOOD.replace(*change)
    with pytest.raises(RealityConfigError) as err:
        parse_reality_toml(text)
    assert err.value.field == field
    assert field in str(err.value)


def test_time_window_defaults_to_120_s_and_zero_is_refused() -> None:
    """Security finding 2: 0 (Xray's "no check") made a captured ClientHello valid forever."""
    absent = GOOD.replace("max_time_diff_ms = 90000\n", "")
    assert parse_reality_toml(absent).max_time_diff_ms == 120_000
    with pytest.raises(RealityConfigError) as err:
        parse_reality_toml(GOOD.replace("max_time_diff_ms = 90000", "max_time_diff_ms = 0"))
    assert err.value.field == "max_time_diff_ms" and "forever" in str(err.value)


def test_missing_required_fields_are_named() -> None:
    for key in ("private_key", "server_names", "short_ids", "target"):
        lines = [ln for ln in GOOD.splitlines() if not ln.startswith(key)]
        with pytest.raises(RealityConfigError) as err:
            parse_reality_toml("\n".join(lines))
        assert err.value.field == key


def test_target_forms() -> None:
    assert parse_target("example.com:443") == ("example.com", 443)
    assert parse_target("[::1]:8443") == ("::1", 8443)
    assert parse_target("8443") == ("localhost", 8443)
    for bad in ("example.com", ":443", "host:0", "host:99999"):
        with pytest.raises(ValueError):
            parse_target(bad)


def test_gate_tables_are_sized_to_the_descriptor_limit() -> None:
    """Security finding 12 (audit e9): the default tables allow 5,120+ target sockets, more than a
    common RLIMIT_NOFILE of 1024; flows beyond it were silently dropped."""
    from quicreality.reality.config import (
        RESERVED_DESCRIPTORS,
        GateLimits,
        fit_to_descriptors,
        target_sockets,
    )

    limits = GateLimits()
    assert fit_to_descriptors(limits, 1 << 20) == limits
    small = fit_to_descriptors(limits, 1024)
    assert target_sockets(small) <= 1024 - RESERVED_DESCRIPTORS
    assert small.max_pending_flows >= 1 and small.max_fallback_flows >= 1
    assert small.max_pending_per_source <= small.max_pending_flows
    assert small.max_pending_flows < limits.max_pending_flows
