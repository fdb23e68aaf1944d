"""quicreality: QUIC v1, TLS 1.3, HTTP/3 and REALITY on ``cryptography``, with a scenario runner.

The sans-IO core takes bytes and ``now`` and returns bytes, events and decisions; it never reads
the clock or randomness itself and never touches a socket (``tests/unit/arch`` enforces it):

* :mod:`.wire`: buffers, varints, range sets, transport error codes;
* :mod:`.quic`: the QUIC v1 connection, endpoint demux, packet protection, recovery;
* :mod:`.tls`: TLS 1.3 for QUIC; :mod:`.reality`: REALITY authentication and the server gate;
* :mod:`.h3`: HTTP/3; :mod:`.relay`: TCP/UDP over QUIC framing; :mod:`.qlog`: the qlog sink.

The edge drives it: :mod:`.aio` (the only asyncio/socket code), :mod:`.cli` and
``python -m quicreality server|client|keygen|relay-client``.  Around it:
``python -m quicreality.scenarios`` (:mod:`.scenarios`, impaired links in network namespaces
and real peers), ``python -m quicreality.bench`` (:mod:`.bench`) and :mod:`.analysis`
(pandas/matplotlib).  See docs/architecture.md and docs/internals.md.

The hot modules are compiled with mypyc at install (``python -m quicreality.build``); before any
submodule loads, :func:`._compiled.activate` picks the extensions or, with ``QR_PURE=1`` or a
stale build, the pure-Python source of all of them (docs/performance.md).
"""

from . import _compiled

_compiled.activate()
