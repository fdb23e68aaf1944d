"""Sans-IO QUIC v1 (RFC 9000, RFC 9001, RFC 9002, RFC 9221 DATAGRAM).

Entry points:

* :class:`~.connection.QuicConnection`, one connection, driven by the five verbs
  ``receive_datagram(data, addr, now)``, ``datagrams_to_send(now)``, ``get_timer()``,
  ``handle_timer(now)`` and ``next_event()`` (events in :mod:`.events`);
* :class:`~.endpoint.QuicServerEndpoint`: server demux, stateless answers (Version Negotiation,
  Retry, stateless reset) and the admission hook where the REALITY gate plugs in;
* :class:`~.config.QuicConfiguration`: plain data, with the clock and randomness injected.

Underneath: :mod:`.packet` and :mod:`.frames` (wire formats), :mod:`.crypto` (packet
protection), :mod:`.streams`, :mod:`.transport_params`, :mod:`.tokens`, :mod:`.recovery` (loss
detection, pacing, congestion control) and :mod:`.errors` (peer violations vs local misuse).
"""
