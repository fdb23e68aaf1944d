"""Coverage-guided fuzzing of every parser a hostile peer or a hostile capture can reach.

``python -m quicreality.fuzz list`` names the targets; ``python -m quicreality.fuzz TARGET
[--runs N] [--seconds S]`` fuzzes one with atheris (libFuzzer), starting from its seed corpus in
``tests/fuzz/corpus/TARGET/``; ``python -m quicreality.fuzz seed`` rebuilds the seeds.

* :mod:`.harness`: the :class:`~.harness.Target` contract (documented errors vs crashes), the
  plain mutation runner the smoke tests use;
* :mod:`.targets`: the registry; the targets live in :mod:`.targets_quic` (packet headers,
  protection, frames through a real connection, transport parameters), :mod:`.targets_tls`
  (both roles), :mod:`.targets_app` (HTTP/3 + QPACK, the relay preface, the REALITY gate) and
  :mod:`.targets_analysis` (qlog and pcap loaders);
* :mod:`.pair`: an in-memory connection pair at handshake-complete that forges 1-RTT packets;
* :mod:`.corpus`: seed corpora from in-memory pairs and the repository's captures.

This package imports nothing at import time, so that atheris can instrument the code under test
as it is first imported (docs/security.md, "Fuzzing figures").
"""
