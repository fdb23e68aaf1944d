"""Resumption secrets, PSK binder and 0-RTT secret against RFC 8448 §3 and §4 (see the README)."""

from __future__ import annotations

import hashlib
import json
import pathlib

from quicreality.tls import messages as m
from quicreality.tls.key_schedule import KeySchedule
from quicreality.tls.resumption import parse_psk_offer, ticket_max_early_data
from quicreality.wire.buffer import Buffer

DIR = pathlib.Path(__file__).parents[2] / "vectors" / "rfc8448"
S3 = {k: bytes.fromhex(v) for k, v in json.loads((DIR / "simple_1rtt.json").read_text())["vectors"].items()}
S4 = {k: bytes.fromhex(v) for k, v in json.loads((DIR / "resumed_0rtt.json").read_text())["vectors"].items()}
AES_128_GCM_SHA256 = 0x1301


def full_client_hello() -> bytes:
    binders = bytes([len(S4["binder"])]) + S4["binder"]
    return S4["client_hello_prefix"] + len(binders).to_bytes(2, "big") + binders


def test_section3_resumption_master_secret_and_ticket_psk() -> None:
    ks = KeySchedule(AES_128_GCM_SHA256)
    ks.master_secret = S3["master_secret"]
    ks.resumption(S3["transcript_hash_through_client_finished"])
    assert ks.resumption_master_secret == S3["resumption_master_secret"]
    assert ks.ticket_psk(S4["ticket_nonce"]) == S4["resumption_psk"]


def test_section3_new_session_ticket_parses() -> None:
    nst = m.pull_new_session_ticket(Buffer(data=S4["new_session_ticket"]))
    assert nst.ticket_lifetime == 30 and nst.ticket_nonce == S4["ticket_nonce"]
    assert ticket_max_early_data(nst.extensions) == 0x400
    assert m.encode_new_session_ticket(nst) == S4["new_session_ticket"]


def test_section4_client_hello_offers_the_ticket_with_early_data() -> None:
    raw = full_client_hello()
    ch = m.pull_client_hello(Buffer(data=raw))
    assert m.PSK_DHE_KE in (ch.psk_key_exchange_modes or ())
    exts = dict(ch.other_extensions)
    assert exts[m.ExtensionType.EARLY_DATA] == b""
    offer = parse_psk_offer(exts[m.ExtensionType.PRE_SHARED_KEY])
    nst = m.pull_new_session_ticket(Buffer(data=S4["new_session_ticket"]))
    (identity, obfuscated_age), = offer.identities
    assert identity == nst.ticket
    assert (obfuscated_age - nst.ticket_age_add) & 0xFFFFFFFF < 1000  # a fresh ticket (ms)
    assert offer.binders == (S4["binder"],)
    assert raw[:-offer.binders_size] == S4["client_hello_prefix"]  # the partial ClientHello


def test_section4_early_secret_binder_and_client_early_traffic_secret() -> None:
    ks = KeySchedule(AES_128_GCM_SHA256, S4["resumption_psk"])
    assert ks.early_secret == S4["early_secret"]
    partial_hash = hashlib.sha256(S4["client_hello_prefix"]).digest()
    assert partial_hash == S4["binder_hash"]
    assert ks.binder(partial_hash) == S4["binder"]
    ch_hash = hashlib.sha256(full_client_hello()).digest()
    assert ch_hash == S4["transcript_hash_client_hello"]
    assert ks.client_early_traffic_secret(ch_hash) == S4["client_early_traffic_secret"]
