"""Benchmarks: ``python -m quicreality.bench NAME`` prints ratios against a peer measured in the
same run, interleaved, so machine drift hits both alike (never timed assertions).

* ``transfer`` (:mod:`.transfer`): 100 MB HTTP/3 downloads on loopback, ours vs aioquic;
* ``handshake`` (:mod:`.handshake`): handshakes per second, plain TLS vs REALITY;
* ``relay`` (:mod:`.relay`): iperf3 through ``RAW -> QUIC_REALITY -> RAW`` vs direct TCP.

Each NAME is a module with ``main(argv) -> int`` (see :mod:`.__main__`).
"""
