"""Sans-IO relay: TCP over QUIC streams and UDP over QUIC DATAGRAM (``RAW -> QUIC -> RAW``).

Wire format and tables:

* :mod:`.protocol`: the stream preface, the status answer, UDP datagram framing, reset codes;
* :mod:`.allow`: the server's allow-list (deny by default);
* :mod:`.config`: the ``[relay]`` TOML table (windows, water marks, timeouts);
* :mod:`.flows`: a bounded UDP flow table with idle expiry.

The state machines, one session per QUIC connection; QUIC events and socket results in (with
``now``), :mod:`.actions` out:

* :mod:`.session`: the TCP-stream mapping both ends share (half-close, resets, backpressure);
* :mod:`.server_session`: :class:`~.server_session.ServerRelaySession` (routing, prefaces,
  allow-list decisions, status answers, UDP flows, set-up timeouts);
* :mod:`.client_session`: :class:`~.client_session.ClientRelaySession`;
* :mod:`.ports`: what a session sees of its connection, ``apply_quic_action``, the observer.

The asyncio edge that carries the actions out lives in ``quicreality.aio.relay_*``.
"""
