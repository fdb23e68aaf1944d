"""TLS 1.3 resumption with PSK (EC)DHE and 0-RTT key agreement (RFC 8446 §2.2, §4.2.11, §4.6.1)."""

from __future__ import annotations

import dataclasses

import pytest
from test_tls_handshake import configs, handshake, split_messages
from tls_helpers import NOW_TS

from quicreality.tls.alerts import AlertDescription, TlsAlert
from quicreality.tls.handshake import Direction, Epoch, InstallKeys, KeyLogLine
from quicreality.tls.messages import HandshakeType
from quicreality.tls.outputs import EarlyDataOutcome, NewTicket
from quicreality.tls.resumption import (
    QUIC_MAX_EARLY_DATA_SIZE,
    ServerTicketStore,
    SessionTicket,
    StrikeRegister,
)

CLOCK = {"t": float(NOW_TS)}


def clock() -> float:
    return CLOCK["t"]


def store() -> ServerTicketStore:
    return ServerTicketStore(bytes(range(32)), lifetime=3600)


def first_ticket(st: ServerTicketStore, **server: object) -> SessionTicket:
    cc, sc = configs(client={"wall_clock": clock},
                     server={"wall_clock": clock, "ticket_store": st, **server})
    pair = handshake(cc, sc, seed=3)
    tickets = [o.ticket for o in pair.client_out if isinstance(o, NewTicket)]
    assert len(tickets) == 1
    return tickets[0]


def resume(st: ServerTicketStore, ticket: SessionTicket, *, early: bool = True, seed: int = 4,
           server: dict | None = None):
    cc, sc = configs(client={"wall_clock": clock, "session_ticket": ticket, "early_data": early},
                     server={"wall_clock": clock, "ticket_store": st, **(server or {})})
    return handshake(cc, sc, seed=seed)


def messages_sent(pair, sender: str) -> list[int]:
    return [msg[0] for who, _, data in pair.wire if who == sender for msg in split_messages(data)]


def outcome(outputs) -> EarlyDataOutcome:
    found = [o for o in outputs if isinstance(o, EarlyDataOutcome)]
    assert len(found) == 1
    return found[0]


def zero_rtt_secret(outputs, direction: Direction) -> bytes | None:
    keys = [o.secret for o in outputs if isinstance(o, InstallKeys)
            and o.epoch == Epoch.ZERO_RTT and o.direction == direction]
    return keys[0] if keys else None


def test_ticket_carries_early_data_limit_and_server_transport_parameters() -> None:
    ticket = first_ticket(store())
    assert ticket.max_early_data_size == QUIC_MAX_EARLY_DATA_SIZE  # RFC 9001 §4.6.1
    assert ticket.transport_parameters == b"server-tp"  # remembered, RFC 9000 §7.4.1
    assert ticket.alpn_protocol == "h3" and ticket.server_name == "localhost"
    assert SessionTicket.parse(ticket.serialize()) == ticket


def test_ticket_file_format_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="format tag"):
        SessionTicket.parse(b"XXXX" + bytes(40))
    with pytest.raises(ValueError, match="truncated"):
        SessionTicket.parse(first_ticket(store()).serialize()[:-3])


def test_resumed_handshake_skips_certificate_and_agrees_on_0rtt_key() -> None:
    st = store()
    ticket = first_ticket(st)
    CLOCK["t"] += 2
    pair = resume(st, ticket)
    assert pair.client.handshake_complete and pair.server.handshake_complete
    server_msgs = messages_sent(pair, "server")
    assert HandshakeType.CERTIFICATE not in server_msgs  # RFC 8446 §2.2
    assert HandshakeType.CERTIFICATE_VERIFY not in server_msgs
    assert outcome(pair.client_out).accepted and outcome(pair.server_out).accepted
    client_key = zero_rtt_secret(pair.client_out, Direction.ENCRYPT)
    assert client_key is not None and client_key == zero_rtt_secret(pair.server_out,
                                                                     Direction.DECRYPT)
    labels = {o.label for o in pair.client_out if isinstance(o, KeyLogLine)}
    assert "CLIENT_EARLY_TRAFFIC_SECRET" in labels
    # the resumed connection issues a fresh ticket
    assert any(isinstance(o, NewTicket) for o in pair.client_out)


def test_replayed_ticket_falls_back_to_full_handshake_and_rejects_0rtt() -> None:
    st = store()
    ticket = first_ticket(st)
    assert outcome(resume(st, ticket, seed=5).server_out).accepted
    again = resume(st, ticket, seed=6)
    server = outcome(again.server_out)
    assert not server.accepted and not server.resumed
    assert "already used" in server.reason
    assert HandshakeType.CERTIFICATE in messages_sent(again, "server")
    assert not outcome(again.client_out).accepted
    assert zero_rtt_secret(again.server_out, Direction.DECRYPT) is None


def test_changed_transport_parameters_resume_but_reject_0rtt() -> None:
    st = store()
    ticket = first_ticket(st, early_data_context=b"limits-a")
    pair = resume(st, ticket, server={"early_data_context": b"limits-b"})
    server = outcome(pair.server_out)
    assert server.resumed and not server.accepted
    assert "transport parameters" in server.reason
    assert not outcome(pair.client_out).accepted
    assert HandshakeType.CERTIFICATE not in messages_sent(pair, "server")


def test_resumption_without_early_data_offer() -> None:
    st = store()
    pair = resume(st, first_ticket(st), early=False)
    assert not any(isinstance(o, EarlyDataOutcome) for o in pair.client_out)
    assert zero_rtt_secret(pair.client_out, Direction.ENCRYPT) is None
    assert HandshakeType.CERTIFICATE not in messages_sent(pair, "server")


def test_ticket_from_another_server_key_is_ignored() -> None:
    ticket = first_ticket(store())
    other = ServerTicketStore(bytes(32), lifetime=3600)
    pair = resume(other, ticket)
    assert not outcome(pair.server_out).resumed
    assert "unknown" in outcome(pair.server_out).reason
    assert HandshakeType.CERTIFICATE in messages_sent(pair, "server")


def test_expired_ticket_is_not_offered() -> None:
    st = store()
    ticket = first_ticket(st)
    CLOCK["t"] += 4000
    pair = resume(st, ticket)
    assert not any(isinstance(o, EarlyDataOutcome) for o in pair.server_out)
    assert HandshakeType.CERTIFICATE in messages_sent(pair, "server")


def test_bad_binder_is_decrypt_error() -> None:
    st = store()
    ticket = first_ticket(st)
    forged = dataclasses.replace(ticket, psk=bytes(len(ticket.psk)))
    with pytest.raises(TlsAlert) as info:
        resume(st, forged)
    assert info.value.description == AlertDescription.decrypt_error


def test_strike_register_eviction_refuses_older_tickets() -> None:
    reg = StrikeRegister(capacity=2)
    assert reg.redeem(b"a", 1.0, 100.0, 5.0).accepted
    assert reg.redeem(b"b", 2.0, 100.0, 5.0).accepted
    assert not reg.redeem(b"b", 2.0, 100.0, 5.0).accepted
    assert reg.redeem(b"c", 3.0, 100.0, 5.0).accepted  # evicts "a"
    replay = reg.redeem(b"a", 1.0, 100.0, 5.0)
    assert not replay.accepted and "older" in replay.reason
    assert len(reg) == 2
    assert reg.redeem(b"d", 4.0, 200.0, 150.0).accepted  # expired entries went away
    assert len(reg) == 1
