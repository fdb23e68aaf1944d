"""Sans-IO relay: TCP over QUIC streams and UDP over QUIC DATAGRAM (``RAW -> QUIC -> RAW``).

* :mod:`.protocol`: the stream preface, the status answer, UDP datagram framing, reset codes;
* :mod:`.allow`: the server's allow-list (deny by default);
* :mod:`.config`: the ``[relay]`` TOML table (windows, water marks, timeouts);
* :mod:`.flows`: a bounded UDP flow table with idle expiry.

The asyncio pumps live in :mod:`quicreality.aio.relay_client` and :mod:`quicreality.aio.relay_server`.
"""
