"""Sans-IO TLS 1.3 for QUIC (RFC 8446, RFC 9001 §4): no records, CRYPTO bytes in and out.

Entry point: :class:`~.handshake.TlsSession` (client or server), configured by
:class:`~.outputs.TlsConfig` and driven by the connection with the CRYPTO bytes of one epoch at a
time; it returns outputs (CRYPTO data to send, new keys, key-log lines) as values.  Certificates
come from a ``CertificateSource`` and peers are judged by a ``PeerVerifier``
(:mod:`.certificates`), the two interfaces through which REALITY plugs in; this package never
imports :mod:`quicreality.reality`.  Underneath: :mod:`.messages` (wire formats),
:mod:`.key_schedule`, :mod:`.key_exchange`, :mod:`.hkdf` and :mod:`.alerts`.
"""
