"""Server verdicts: one test per reason, share selection, replay cache (spec §3.1, §9.3-§9.4)."""

from __future__ import annotations

import hashlib
import random

from cryptography.hazmat.primitives.asymmetric import x25519
from reality_helpers import (
    CLIENT_EPHEMERAL_PUBLIC,
    RANDOM,
    SERVER_PUBLIC,
    SHORT_ID,
    SNI,
    WALL,
    plain_client_hello,
    sealed_client_hello,
    server_config,
)

from quicreality.reality import token as t
from quicreality.reality.auth import (
    Reason,
    ReplayCache,
    select_x25519_share,
    verify_client_hello,
)
from quicreality.reality.keys import generate_key_pair, x25519_public_key
from quicreality.reality.token import TokenPlaintext
from quicreality.tls import messages as m


def verdict(raw: bytes, cfg=None, now: float = WALL, cache: ReplayCache | None = None):  # type: ignore[no-untyped-def]
    return verify_client_hello(raw, cfg or server_config(), now, cache)


def test_valid_hello_is_accepted_with_its_fields() -> None:
    raw, hook = sealed_client_hello()
    v = verdict(raw)
    assert v.accepted and v.reason is Reason.ACCEPT
    assert v.auth_key == hook.auth_key
    assert v.server_name == SNI
    assert v.client_version == (26, 3, 27)
    assert v.client_time == int(WALL)
    assert v.short_id == SHORT_ID
    assert "auth_key" not in str(v.describe())


def test_all_zero_short_id_matches_the_empty_entry() -> None:
    raw, _ = sealed_client_hello(short_id=bytes(8))
    assert verdict(raw).accepted


def test_wrong_server_key_fails_the_aead() -> None:
    other = generate_key_pair(lambda n: bytes(range(1, n + 1)))
    raw, _ = sealed_client_hello(server_public=other.public_key)
    assert verdict(raw).reason is Reason.AEAD_OPEN_FAILED


def test_one_byte_of_short_id_changed_is_unknown() -> None:
    wrong = bytearray(SHORT_ID)
    wrong[7] ^= 1
    v = verdict(sealed_client_hello(short_id=bytes(wrong))[0])
    assert v.reason is Reason.UNKNOWN_SHORT_ID and not v.accepted and v.auth_key is None


def test_version_below_min_or_above_max_is_out_of_range() -> None:
    assert verdict(sealed_client_hello(version=(26, 3, 26))[0]).reason is Reason.VERSION_OUT_OF_RANGE
    assert verdict(sealed_client_hello(version=(1, 8, 1))[0]).reason is Reason.VERSION_OUT_OF_RANGE
    assert verdict(sealed_client_hello(version=(26, 9, 1))[0]).reason is Reason.VERSION_OUT_OF_RANGE
    assert verdict(sealed_client_hello(version=(26, 9, 0))[0]).accepted
    no_bounds = server_config(min_client_ver=None, max_client_ver=None)
    assert verdict(sealed_client_hello(version=(0, 0, 1))[0], no_bounds).accepted


def test_timestamp_outside_max_time_diff_is_skew() -> None:
    assert verdict(sealed_client_hello(wall=WALL - 61)[0]).reason is Reason.TIME_SKEW
    assert verdict(sealed_client_hello(wall=WALL + 61)[0]).reason is Reason.TIME_SKEW
    assert verdict(sealed_client_hello(wall=WALL - 59)[0]).accepted


def test_zero_max_time_diff_still_checks_the_timestamp() -> None:
    """Security finding 2: 0 used to turn the check off, so a captured hello was valid forever."""
    zero = server_config(max_time_diff_ms=0)
    assert verdict(sealed_client_hello(wall=WALL - 86400)[0], zero).reason is Reason.TIME_SKEW
    raw, _ = sealed_client_hello()
    cache = ReplayCache(capacity=100, window=zero.replay_window_ms / 1000)
    assert verdict(raw, zero, WALL, cache).accepted
    assert verdict(raw, zero, WALL + 1, cache).reason is Reason.REPLAY
    assert verdict(raw, zero, WALL + 121, cache).reason is Reason.TIME_SKEW  # was ACCEPT


def test_sni_must_be_listed_exactly() -> None:
    assert verdict(sealed_client_hello(server_name="WWW.example.com")[0]).reason is Reason.SNI_NOT_ALLOWED
    assert verdict(sealed_client_hello(server_name=None)[0]).reason is Reason.SNI_NOT_ALLOWED
    empty_ok = server_config(server_names=frozenset({SNI, ""}))
    assert verdict(sealed_client_hello(server_name=None)[0], empty_ok).accepted


def test_no_x25519_share() -> None:
    p256 = m.KeyShareEntry(m.Group.SECP256R1, b"\x04" + bytes(64))
    raw = bytes(plain_client_hello(key_share=(p256,)))
    assert verdict(raw).reason is Reason.NO_X25519_SHARE


def test_bad_session_id_length_and_not_tls13_and_garbage() -> None:
    assert verdict(bytes(plain_client_hello(session_id=b""))).reason is Reason.BAD_SESSION_ID
    assert verdict(bytes(plain_client_hello(session_id=bytes(16)))).reason is Reason.BAD_SESSION_ID
    tls12 = plain_client_hello(supported_versions=(0x0303,))
    assert verdict(bytes(tls12)).reason is Reason.NOT_TLS13
    assert verdict(random.Random(3).randbytes(300)).reason is Reason.PARSE_ERROR
    assert verdict(b"").reason is Reason.PARSE_ERROR


def test_unsealed_hello_fails_the_aead() -> None:
    assert verdict(bytes(plain_client_hello())).reason is Reason.AEAD_OPEN_FAILED


def test_small_order_share_is_rejected_not_raised() -> None:
    zero = m.KeyShareEntry(m.Group.X25519, bytes(32))
    assert verdict(bytes(plain_client_hello(key_share=(zero,)))).reason is Reason.BAD_X25519_SHARE


def _hybrid_share(x25519_public: bytes) -> m.KeyShareEntry:
    return m.KeyShareEntry(0x11EC, bytes(range(256)) * 4 + bytes(160) + x25519_public)


def test_share_selection_prefers_x25519_over_the_hybrid() -> None:
    """uTLS-style hello: 0x11ec (its own X25519 key) first, 0x001d second; the server uses 0x001d."""
    hybrid_key = x25519.X25519PrivateKey.from_private_bytes(bytes(range(40, 72)))
    hybrid_pub = x25519_public_key(hybrid_key.private_bytes_raw())
    shares = (_hybrid_share(hybrid_pub), m.KeyShareEntry(m.Group.X25519, CLIENT_EPHEMERAL_PUBLIC))
    assert select_x25519_share(shares) == CLIENT_EPHEMERAL_PUBLIC
    # Sealed with the standalone X25519 key (what our hook does): accepted.
    raw, _ = sealed_client_hello(key_share=shares)
    assert verdict(raw).accepted
    # Sealed with the hybrid's X25519 key instead: the server used 0x001d, so the AEAD fails.
    hello = plain_client_hello(key_share=shares)
    k = t.derive_auth_key(
        hybrid_key.exchange(x25519.X25519PublicKey.from_public_bytes(SERVER_PUBLIC)), RANDOM)
    t.seal_client_hello(hello, k, TokenPlaintext((26, 3, 27), int(WALL), SHORT_ID))
    assert verdict(bytes(hello)).reason is Reason.AEAD_OPEN_FAILED


def test_share_selection_uses_last_32_bytes_of_the_hybrid_alone() -> None:
    hybrid_key = x25519.X25519PrivateKey.from_private_bytes(bytes(range(40, 72)))
    share = _hybrid_share(x25519_public_key(hybrid_key.private_bytes_raw()))
    assert select_x25519_share((share,)) == share.key_exchange[-32:]
    hello = plain_client_hello(key_share=(share,))
    k = t.derive_auth_key(
        hybrid_key.exchange(x25519.X25519PublicKey.from_public_bytes(SERVER_PUBLIC)), RANDOM)
    t.seal_client_hello(hello, k, TokenPlaintext((26, 3, 27), int(WALL), SHORT_ID))
    assert verdict(bytes(hello)).accepted
    # A hybrid share of the wrong length is not used.
    short = m.KeyShareEntry(0x11EC, share.key_exchange[:-1])
    assert select_x25519_share((short,)) is None


def test_replayed_hello_within_the_window_is_a_replay() -> None:
    cache = ReplayCache(capacity=100, window=60.0)
    raw, _ = sealed_client_hello()
    assert verdict(raw, cache=cache).accepted
    assert verdict(raw, cache=cache).reason is Reason.REPLAY
    assert verdict(raw, cache=cache, now=WALL + 30).reason is Reason.REPLAY
    # A rejected hello is not remembered.
    bad, _ = sealed_client_hello(short_id=bytes(range(8)))
    assert verdict(bad, cache=cache).reason is Reason.UNKNOWN_SHORT_ID
    assert len(cache) == 1


def test_replay_of_a_client_ahead_is_remembered_until_its_token_time_plus_the_window() -> None:
    """Security finding 2: a client 50 s ahead, 60 s window: its hello replayed at +70 s used to be
    accepted (the cache forgot it after 60 s of server time)."""
    cfg = server_config(max_time_diff_ms=60_000)
    cache = ReplayCache(capacity=100, window=cfg.replay_window_ms / 1000)
    raw, _ = sealed_client_hello(wall=WALL + 50)
    assert verdict(raw, cfg, WALL, cache).accepted
    assert verdict(raw, cfg, WALL + 70, cache).reason is Reason.REPLAY
    assert verdict(raw, cfg, WALL + 109, cache).reason is Reason.REPLAY
    assert verdict(raw, cfg, WALL + 111, cache).reason is Reason.TIME_SKEW


def test_full_replay_cache_forwards_and_never_forgets_a_live_token() -> None:
    """Security finding 2: a full cache used to evict the oldest token, letting its replay in."""
    cache = ReplayCache(capacity=1, window=60.0)
    first, _ = sealed_client_hello()
    second, _ = sealed_client_hello(random_=bytes(range(1, 33)), wall=WALL + 30)
    assert verdict(first, cache=cache).accepted
    full = verdict(second, cache=cache, now=WALL + 30)
    assert full.reason is Reason.REPLAY_CACHE_FULL and not full.accepted
    assert verdict(first, cache=cache, now=WALL + 59).reason is Reason.REPLAY
    assert verdict(second, cache=cache, now=WALL + 61).accepted  # the first one expired at +60


def test_replay_cache_is_bounded_and_expires() -> None:
    from quicreality.reality.auth import ReplayCheck

    cache = ReplayCache(capacity=3, window=10.0)
    for i in range(3):
        assert cache.admit(bytes([i]) * 32, token_time=100.0, now_wall=100.0) is ReplayCheck.FRESH
    assert cache.admit(bytes([3]) * 32, 100.0, 100.0) is ReplayCheck.FULL
    assert len(cache) == 3
    assert cache.admit(bytes([0]) * 32, 100.0, 105.0) is ReplayCheck.REPLAY
    assert cache.admit(bytes([0]) * 32, 100.0, 110.5) is ReplayCheck.FRESH  # expired at 110
    cache.expire(200.0)
    assert len(cache) == 0


def test_every_early_failure_still_runs_the_key_exchange_and_the_aead(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Security finding 12 (audit e5): an unlisted SNI (and the other early checks) used to return
    before X25519 + HKDF + AES-GCM, so the time spent told a prober whether its SNI was listed."""
    from quicreality.reality import auth

    opened: list[int] = []
    real_open = auth.open_client_hello

    def spy(raw: bytes, key: bytes, span):  # type: ignore[no-untyped-def]
        opened.append(len(raw))
        return real_open(raw, key, span)

    monkeypatch.setattr(auth, "open_client_hello", spy)
    p256 = m.KeyShareEntry(m.Group.SECP256R1, b"\x04" + bytes(64))
    cases = {
        Reason.SNI_NOT_ALLOWED: sealed_client_hello(server_name="not-listed.example")[0],
        Reason.NOT_TLS13: bytes(plain_client_hello(supported_versions=(0x0303,))),
        Reason.BAD_SESSION_ID: bytes(plain_client_hello(session_id=b"")),
        Reason.NO_X25519_SHARE: bytes(plain_client_hello(key_share=(p256,))),
        Reason.ACCEPT: sealed_client_hello()[0],
    }
    for reason, raw in cases.items():
        opened.clear()
        assert verdict(raw).reason is reason
        # One open per carrier kind (session_id, ECH), real or stand-in, whatever the hello has.
        assert opened == [max(len(raw), 71)] * 2, reason


def test_logs_and_qlog_name_the_short_id_by_a_fingerprint_only() -> None:
    """Security finding 12: short IDs (credentials) used to be logged and written to qlog."""
    v = verdict(sealed_client_hello()[0])
    assert v.accepted and v.short_id == SHORT_ID
    info = v.describe()
    text = repr(info) + repr(v)
    assert SHORT_ID.hex() not in text and "short_id'" not in text
    assert info["short_id_fp"] == hashlib.sha256(SHORT_ID).hexdigest()[:8]
    assert v.auth_key is not None and v.auth_key.hex() not in text
