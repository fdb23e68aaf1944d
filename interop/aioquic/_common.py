"""Shared bits of the aioquic interop peers (h3server.py, h3client.py). Peers, not our stack.

Written against aioquic 1.7.2 (PyPI); ``QR_PEER_IMPL=qh3`` runs them on qh3 instead (``_impl.py``).
The byte pattern of ``GET /bytes/N`` is the same as the
quic-go peer's: the byte at offset ``i`` is ``i % 256``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TextIO

from _impl import NAME, load

QuicConfiguration = load("quic.configuration").QuicConfiguration
QuicFileLogger = load("quic.logger").QuicFileLogger
QuicLogger = load("quic.logger").QuicLogger
CipherSuite = load("tls").CipherSuite

#: One 64 KiB block of the /bytes/N pattern (65536 is a multiple of 256).
PATTERN_BLOCK = bytes(range(256)) * 256


def pattern_bytes(offset: int, length: int) -> bytes:
    """``length`` bytes of the /bytes/N pattern starting at ``offset``."""
    start = offset % 256
    reps = (start + length) // len(PATTERN_BLOCK) + 1
    return (PATTERN_BLOCK * reps)[start : start + length]


class SafeQuicFileLogger(QuicFileLogger):
    """QuicFileLogger whose end_trace may be called twice (our flush at exit, then aioquic's)."""

    def end_trace(self, trace) -> None:  # type: ignore[no-untyped-def]
        if trace in self._traces:
            super().end_trace(trace)


def parse_cipher_suites(value: str | None) -> list[CipherSuite] | None:
    """``AES_128_GCM_SHA256,CHACHA20_POLY1305_SHA256`` (``TLS_`` prefix optional) -> suites."""
    if not value:
        return None
    out = []
    for name in value.split(","):
        key = name.strip().upper().removeprefix("TLS_")
        aliases = {"AES128": "AES_128_GCM_SHA256", "AES256": "AES_256_GCM_SHA384",
                   "CHACHA20": "CHACHA20_POLY1305_SHA256"}
        key = aliases.get(key, key)
        try:
            out.append(CipherSuite[key])
        except KeyError:
            raise argparse.ArgumentTypeError(f"unknown cipher suite {name!r}") from None
    return out


#: QUIC version names (RFC 9000 §15, RFC 9369 §3.1).
VERSION_NAMES = {"v1": 0x00000001, "v2": 0x6B3343CF}


def parse_versions(value: str) -> list[int]:
    """``v2,v1`` (or hex numbers) -> version numbers, in order."""
    out = []
    for name in value.split(","):
        name = name.strip().lower()
        try:
            out.append(VERSION_NAMES[name] if name in VERSION_NAMES else int(name, 16))
        except ValueError:
            raise argparse.ArgumentTypeError(f"unknown QUIC version {name!r}") from None
    return out


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Options both peers share."""
    parser.add_argument("--qlog-dir", default=os.environ.get("QLOGDIR"),
                        help="write one qlog (JSON, qlog 0.3) per connection here (default $QLOGDIR)")
    parser.add_argument("--keylog", default=os.environ.get("SSLKEYLOGFILE"),
                        help="append TLS secrets (NSS key log format) here (default $SSLKEYLOGFILE)")
    parser.add_argument("--cipher-suites", type=parse_cipher_suites, default=None,
                        help="comma separated TLS 1.3 suites, e.g. CHACHA20_POLY1305_SHA256")
    parser.add_argument("--congestion-control", default="reno", choices=["reno", "cubic"],
                        help="aioquic congestion controller")
    parser.add_argument("--versions", type=parse_versions, default=None,
                        help="QUIC versions in preference order, e.g. v2,v1 (client: the first is "
                             "the version of its first Initial); default: the library's")
    parser.add_argument("-v", "--verbose", action="store_true", help="log aioquic debug output")


def apply_common_args(config: QuicConfiguration, args: argparse.Namespace) -> TextIO | None:
    """Set qlog, keylog, cipher suites and CC on ``config``; returns the keylog file to close."""
    if args.qlog_dir:
        os.makedirs(args.qlog_dir, exist_ok=True)
        config.quic_logger = SafeQuicFileLogger(args.qlog_dir)
    keylog = None
    if args.keylog:
        keylog = open(args.keylog, "a", buffering=1)  # noqa: SIM115 - closed by the caller; line buffered
        config.secrets_log_file = keylog
    if args.cipher_suites:
        config.cipher_suites = args.cipher_suites
    if args.versions:
        config.supported_versions = list(args.versions)
        if config.is_client:  # the version of its first Initial (aioquic: original_version)
            config.original_version = args.versions[0]
    if hasattr(config, "congestion_control_algorithm"):
        config.congestion_control_algorithm = args.congestion_control
    elif args.congestion_control != "reno":
        raise SystemExit(f"{NAME} has no --congestion-control choice (it runs reno only)")
    return keylog


def flush_qlog(logger: QuicLogger | None) -> None:
    """Write the traces of connections that have not terminated yet (e.g. on SIGTERM)."""
    if isinstance(logger, QuicFileLogger):
        for trace in list(getattr(logger, "_traces", [])):
            try:
                logger.end_trace(trace)
            except Exception as exc:  # noqa: BLE001 - best effort at exit
                print(f"qlog flush: {exc}", file=sys.stderr)


def emit(obj: dict) -> None:
    """One JSON line on stdout, flushed."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()
