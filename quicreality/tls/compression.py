"""TLS certificate compression (RFC 8879): the compress_certificate extension and the
CompressedCertificate message, with brotli (RFC 7932), the algorithm Chrome offers.

The compressed bytes are those of the Certificate message *body* (the 4-byte handshake header
excluded), as BoringSSL and OpenSSL compress them; ``uncompressed_length`` is that body's length.
The CompressedCertificate message itself, not the Certificate it decompresses to, is what enters
the transcript (RFC 8879 §4: it is sent "in place of" Certificate).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import brotli

from ..wire.buffer import Buffer, BufferReadError
from .alerts import AlertDescription, TlsAlert
from .constants import MAX_MESSAGE_SIZE, CertificateCompressionAlgorithm, HandshakeType

#: Algorithms we can decompress (and compress).
SUPPORTED_ALGORITHMS: tuple[int, ...] = (CertificateCompressionAlgorithm.BROTLI,)


@dataclass(frozen=True, slots=True)
class CompressedCertificate:
    """CompressedCertificate (RFC 8879 §4)."""

    algorithm: int
    uncompressed_length: int
    compressed_certificate_message: bytes
    raw: bytes = field(default=b"", compare=False)


def encode_compress_certificate(algorithms: tuple[int, ...]) -> bytes:
    """The compress_certificate extension body: ``algorithms<2..2^8-2>`` (RFC 8879 §3)."""
    body = b"".join(a.to_bytes(2, "big") for a in algorithms)
    if not 2 <= len(body) <= 254:
        raise ValueError("compress_certificate lists 1 to 127 algorithms")
    return bytes([len(body)]) + body


def pull_compress_certificate(data: bytes) -> tuple[int, ...]:
    """Parse a compress_certificate extension body.

    Raises:
        TlsAlert: decode_error when malformed.
    """
    if len(data) < 3 or data[0] != len(data) - 1 or data[0] % 2:
        raise TlsAlert(AlertDescription.decode_error, "malformed compress_certificate")
    return tuple(int.from_bytes(data[i : i + 2], "big") for i in range(1, len(data), 2))


def pull_compressed_certificate(raw: bytes) -> CompressedCertificate:
    """Read one CompressedCertificate handshake message (4-byte header included).

    Raises:
        TlsAlert: decode_error when malformed.
    """
    buf = Buffer(data=raw)
    try:
        if buf.pull_uint8() != HandshakeType.COMPRESSED_CERTIFICATE:
            raise TlsAlert(AlertDescription.unexpected_message, "not a CompressedCertificate")
        if buf.pull_uint24() != len(raw) - 4:
            raise TlsAlert(AlertDescription.decode_error, "CompressedCertificate length")
        algorithm = buf.pull_uint16()
        uncompressed_length = buf.pull_uint24()
        compressed = buf.pull_bytes(buf.pull_uint24())
    except BufferReadError as exc:
        raise TlsAlert(AlertDescription.decode_error, "truncated CompressedCertificate") from exc
    if not buf.eof() or not compressed:
        raise TlsAlert(AlertDescription.decode_error, "malformed CompressedCertificate")
    return CompressedCertificate(algorithm, uncompressed_length, compressed, raw)


def encode_compressed_certificate(msg: CompressedCertificate) -> bytes:
    """Serialize a CompressedCertificate handshake message."""
    body = (
        msg.algorithm.to_bytes(2, "big")
        + msg.uncompressed_length.to_bytes(3, "big")
        + len(msg.compressed_certificate_message).to_bytes(3, "big")
        + msg.compressed_certificate_message
    )
    return bytes([HandshakeType.COMPRESSED_CERTIFICATE]) + len(body).to_bytes(3, "big") + body


def compress_certificate(algorithm: int, certificate_message: bytes) -> CompressedCertificate:
    """Compress an encoded Certificate message (header included; its body is compressed)."""
    if algorithm != CertificateCompressionAlgorithm.BROTLI:
        raise ValueError(f"cannot compress with algorithm {algorithm}")
    body = certificate_message[4:]
    msg = CompressedCertificate(algorithm, len(body), brotli.compress(body))
    raw = encode_compressed_certificate(msg)
    return CompressedCertificate(msg.algorithm, msg.uncompressed_length,
                                 msg.compressed_certificate_message, raw)


def decompress_certificate(msg: CompressedCertificate, offered: tuple[int, ...]) -> bytes:
    """The Certificate handshake message (header included) that ``msg`` carries.

    Args:
        msg: the received CompressedCertificate.
        offered: the algorithms our compress_certificate extension listed.

    Raises:
        TlsAlert: illegal_parameter for an algorithm we did not offer (RFC 8879 §4);
            bad_certificate when the data does not decompress to exactly
            ``uncompressed_length`` bytes (RFC 8879 §4), or would exceed our message limit.
    """
    if msg.algorithm not in offered or msg.algorithm not in SUPPORTED_ALGORITHMS:
        raise TlsAlert(
            AlertDescription.illegal_parameter,
            f"CompressedCertificate with algorithm {msg.algorithm}, which we did not offer",
        )
    length = msg.uncompressed_length
    if length > MAX_MESSAGE_SIZE:
        raise TlsAlert(AlertDescription.bad_certificate, "certificate too large to decompress")
    decompressor = brotli.Decompressor()
    try:
        # One byte over the announced length is enough to see a lie; the limit bounds memory.
        body = decompressor.process(msg.compressed_certificate_message,
                                    output_buffer_limit=length + 1)
    except brotli.error as exc:
        raise TlsAlert(AlertDescription.bad_certificate, f"brotli: {exc}") from exc
    if len(body) != length or not decompressor.is_finished():
        raise TlsAlert(
            AlertDescription.bad_certificate,
            "certificate does not decompress to uncompressed_length bytes",
        )
    return bytes([HandshakeType.CERTIFICATE]) + length.to_bytes(3, "big") + body
