"""Retry tokens and stateless reset tokens (RFC 9000 §8.1, §10.3.2)."""

from __future__ import annotations

import random

import pytest

from quicreality.quic.tokens import (
    InvalidTokenError,
    RetryTokenHandler,
    StatelessResetTokens,
    stateless_reset_token,
)

ADDR = ("192.0.2.1", 4433)
ODCID = bytes.fromhex("8394c8f03e515708")
SCID = bytes.fromhex("f067a5502a4262b5")


def make_rng(seed: int = 1):  # type: ignore[no-untyped-def]
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


def handler(lifetime: float = 10.0) -> RetryTokenHandler:
    return RetryTokenHandler(make_rng(), lifetime=lifetime)


def test_retry_token_round_trip() -> None:
    tokens = handler()
    token = tokens.issue(
        addr=ADDR, original_destination_cid=ODCID, retry_source_cid=SCID, now=100.0
    )
    contents = tokens.validate(token, addr=ADDR, now=105.0, destination_cid=SCID)
    assert (contents.original_destination_cid, contents.retry_source_cid, contents.issued_at) == (
        ODCID,
        SCID,
        100.0,
    )


def test_retry_tokens_are_unique_per_issue() -> None:
    tokens = handler()
    a = tokens.issue(addr=ADDR, original_destination_cid=ODCID, retry_source_cid=SCID, now=1.0)
    b = tokens.issue(addr=ADDR, original_destination_cid=ODCID, retry_source_cid=SCID, now=1.0)
    assert a != b


@pytest.mark.parametrize(
    ("addr", "now", "destination_cid"),
    [
        (("192.0.2.2", 4433), 101.0, None),  # other host
        (("192.0.2.1", 4434), 101.0, None),  # other port
        (ADDR, 111.0, None),  # expired
        (ADDR, 50.0, None),  # issued in the future
        (ADDR, 101.0, b"\x00" * 8),  # other connection ID
    ],
)
def test_retry_token_rejections(
    addr: tuple[str, int], now: float, destination_cid: bytes | None
) -> None:
    tokens = handler()
    token = tokens.issue(
        addr=ADDR, original_destination_cid=ODCID, retry_source_cid=SCID, now=100.0
    )
    with pytest.raises(InvalidTokenError):
        tokens.validate(token, addr=addr, now=now, destination_cid=destination_cid)


def test_tampered_or_foreign_tokens_are_rejected() -> None:
    tokens = handler()
    token = bytearray(
        tokens.issue(addr=ADDR, original_destination_cid=ODCID, retry_source_cid=SCID, now=1.0)
    )
    token[20] ^= 1
    for bad in (bytes(token), b"", b"\x01" * 10, b"\x02" + bytes(40)):
        with pytest.raises(InvalidTokenError):
            tokens.validate(bad, addr=ADDR, now=1.0)
    other = RetryTokenHandler(make_rng(2))
    good = tokens.issue(addr=ADDR, original_destination_cid=ODCID, retry_source_cid=SCID, now=1.0)
    with pytest.raises(InvalidTokenError):
        other.validate(good, addr=ADDR, now=1.0)


def test_stateless_reset_tokens() -> None:
    key = bytes(range(32))
    token = stateless_reset_token(key, ODCID)
    assert len(token) == 16
    assert token == StatelessResetTokens(key).token_for(ODCID)
    assert token != stateless_reset_token(key, SCID)
    assert token != stateless_reset_token(bytes(32), ODCID)
    with pytest.raises(ValueError):
        StatelessResetTokens(b"short")
