"""Minimal HTTP/3 (RFC 9114) over our QUIC, QPACK (RFC 9204) via pylsqpack. Sans-IO.

Entry points: :class:`~.connection.H3Connection` (fed QUIC events, writes through the
:class:`~.streams.QuicTransport` seam), :class:`~.client.H3Client` (GET requests, collected
responses) and :class:`~.server.H3FileServer` (``/bytes/N`` and a served directory).  Wire
formats are in :mod:`.frames`, events in :mod:`.events`, field checks in :mod:`.fields`.
"""
