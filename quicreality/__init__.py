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
"""


def _refuse_stale_mypyc_build() -> None:
    """Refuse to import when ``python -m quicreality.build`` compiled sources that changed since."""
    import os
    import sys

    building = "quicreality.build" in sys.orig_argv[1:3]  # python -m quicreality.build may fix it
    if not building and os.path.exists(os.path.join(os.path.dirname(__file__), "_mypyc_stamp.json")):
        from .build import stale_modules

        stale = stale_modules()
        if stale:
            raise ImportError(f"stale mypyc build of {', '.join(stale)}: run `python -m quicreality.build` "
                              "to rebuild, or `python -m quicreality.build --clean` for pure Python")


_refuse_stale_mypyc_build()
