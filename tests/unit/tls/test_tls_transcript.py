"""The transcript's running hash gives exactly the one-shot Transcript-Hash (RFC 8446 §4.4.1)."""

from __future__ import annotations

import hashlib
import os

from quicreality.tls.key_schedule import Transcript, message_hash


def test_running_digest_equals_hash_of_everything_added() -> None:
    transcript = Transcript()
    added = b""
    for size in (1900, 1220, 90, 1100, 80, 36, 0, 52):
        message = os.urandom(size)
        transcript.add(message)
        added += message
        assert transcript.digest("sha256") == hashlib.sha256(added).digest()
        assert transcript.digest("sha256") == hashlib.sha256(added).digest()  # no double count
    assert transcript.data == added


def test_digest_with_another_hash_starts_over() -> None:
    transcript = Transcript()
    transcript.add(b"first")
    assert transcript.digest("sha256") == hashlib.sha256(b"first").digest()
    transcript.add(b"second")
    assert transcript.digest("sha384") == hashlib.sha384(b"firstsecond").digest()
    assert transcript.digest("sha256") == hashlib.sha256(b"firstsecond").digest()


def test_hello_retry_restart_resets_the_running_hash() -> None:
    transcript = Transcript()
    hello1 = os.urandom(300)
    transcript.add(hello1)
    transcript.digest("sha256")
    transcript.restart_after_hello_retry("sha256")
    retry = os.urandom(90)
    transcript.add(retry)
    expected = message_hash("sha256", hello1) + retry
    assert transcript.digest("sha256") == hashlib.sha256(expected).digest()


def test_a_pickled_transcript_digests_as_the_original() -> None:
    import pickle

    t = Transcript()
    t.add(b"\x01\x00\x00\x03abc")
    first = t.digest("sha256")  # the running hash exists now, and does not pickle itself
    copy = pickle.loads(pickle.dumps(t))
    assert copy.digest("sha256") == first
    for x in (t, copy):
        x.add(b"\x02\x00\x00\x01z")
    assert copy.digest("sha256") == t.digest("sha256") == hashlib.sha256(
        b"\x01\x00\x00\x03abc\x02\x00\x00\x01z").digest()
