"""Wire primitives shared by every layer, with no dependencies inside quicreality.

* :mod:`.buffer`: :class:`~.buffer.Buffer`, the ``pull_``/``push_`` helpers for fixed-width
  integers and QUIC varints (RFC 9000 §16);
* :mod:`.rangeset`: :class:`~.rangeset.RangeSet`, disjoint ranges for ACKs and reassembly;
* :mod:`.error_codes`: :class:`~.error_codes.QuicErrorCode` (RFC 9000 §20.1), shared by
  :mod:`quicreality.quic` and :mod:`quicreality.qlog`.
"""
