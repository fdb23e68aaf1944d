"""The asyncio edge: the only code that owns sockets, the event loop and timers.

It carries out what the sans-IO core decides and feeds it datagrams with the time:

* :mod:`.driver`: the shared UDP pump around sans-IO connections; :mod:`.udp`: batched sockets;
* :mod:`.server` (:class:`~.server.QuicServer`, the HTTP/3 file server) and :mod:`.client`
  (:class:`~.client.QuicClientSession`, parallel downloads);
* :mod:`.reality_server` (the REALITY listener carrying out the gate's verdicts) and
  :mod:`.fallback` (the byte relay to the target); :mod:`.reality_cli`: ``keygen`` and the
  REALITY options;
* ``relay_*``: the TCP/UDP relay's sockets and pumps, ``relay-client`` and the server's
  ``[relay]`` options.

Entry point: ``python -m quicreality`` (:mod:`quicreality.cli`) builds these from argv.
"""
