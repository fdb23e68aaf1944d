"""The interop matrix: quic-interop-runner's test cases over our emulated links.

``python -m quicreality.interop list|run`` (see :mod:`.__main__`).  Modules: :mod:`.cases`
(the cases as data), :mod:`.adapters` and :mod:`.endpoint` (QIR's endpoint contract per peer),
:mod:`.runner` (namespaces, captures, processes), :mod:`.trace` and :mod:`.verdicts` (the wire
checks), :mod:`.report` (``result.json``, ``matrix.html``).  Documentation: docs/interop.md.
"""
