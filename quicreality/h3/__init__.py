"""Minimal HTTP/3 (RFC 9114) over our QUIC, QPACK via pylsqpack: connection, file server, client."""
