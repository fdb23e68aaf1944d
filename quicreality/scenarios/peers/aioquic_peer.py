"""aioquic 1.7.2 and qh3 2.1.0 (PyPI) through interop/aioquic/h3server.py and h3client.py, run by
this Python. The two peers run the same scripts; ``QR_PEER_IMPL=qh3`` in the environment selects
qh3 (an aioquic fork with its crypto, TLS and QPACK in Rust), which has reno only.

Server: ``python h3server.py --host H --port P --certificate C --private-key K --www DIR
[--qlog-dir D] [--keylog F] [--cipher-suites NAME] [--retry]``; prints
``{"event": "listening", "addr": ...}`` once bound; serves ``/bytes/N`` like qrgo.
Client: ``python h3client.py [--insecure | --ca CA] -o DIR [--qlog-dir D] [--keylog F]
[--cipher-suites NAME] [--timeout S] URL...``; one JSON line per URL.
qlog: ``<ODCID>.qlog``, one JSON document (qlog 0.3) per connection, written when it ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from . import paths
from .base import (
    Command,
    DownloadRequest,
    PeerSpec,
    ServeRequest,
    Unsupported,
    canonical_cipher,
    parse_json_lines,
)

R = TypeVar("R", ServeRequest, DownloadRequest)


def _common(qlog_dir, keylog, cipher) -> list[str]:  # type: ignore[no-untyped-def]
    argv: list[str] = []
    if qlog_dir is not None:
        argv += ["--qlog-dir", str(qlog_dir)]
    if keylog is not None:
        argv += ["--keylog", str(keylog)]
    if cipher:
        argv += ["--cipher-suites", canonical_cipher(cipher)]
    return argv


def _on(impl: str, make: Callable[[R], Command]) -> Callable[[R], Command]:
    """``make``'s command, run on ``impl`` (``QR_PEER_IMPL``)."""
    def build(req: R) -> Command:
        cmd = make(req)
        return replace(cmd, env={**cmd.env, "QR_PEER_IMPL": impl})
    return build


def _serve_qh3(req: ServeRequest) -> Command:
    if req.congestion not in (None, "reno"):
        raise Unsupported(f"qh3 2.1.0 has reno only, not {req.congestion!r}")
    return serve(replace(req, congestion=None))


def serve(req: ServeRequest) -> Command:
    """aioquic HTTP/3 file server."""
    argv = [str(paths.python()), str(paths.aioquic_script("h3server.py")),
            "--host", req.host, "--port", str(req.port), "--certificate", str(req.cert),
            "--private-key", str(req.key), "--www", str(req.www),
            *_common(req.qlog_dir, req.keylog, req.cipher)]
    if req.retry:
        argv.append("--retry")
    if req.congestion:
        if req.congestion not in ("reno", "cubic"):
            raise Unsupported(f"aioquic 1.7.2 has reno and cubic, not {req.congestion!r}")
        argv += ["--congestion-control", req.congestion]
    return Command(argv=tuple(argv))


def download(req: DownloadRequest) -> Command:
    """aioquic HTTP/3 download client."""
    argv = [str(paths.python()), str(paths.aioquic_script("h3client.py")),
            "-o", str(req.out_dir), "--timeout", f"{req.timeout:g}",
            *_common(req.qlog_dir, req.keylog, req.cipher)]
    if req.insecure:
        argv.append("--insecure")
    elif req.ca is not None:
        argv += ["--ca", str(req.ca)]
    argv += list(req.urls)
    return Command(argv=tuple(argv))


SPEC = PeerSpec(
    name="aioquic",
    description="aioquic 1.7.2 (PyPI) via interop/aioquic",
    serve=serve,
    download=download,
    parse=parse_json_lines,
    qlog_format="JSON qlog 0.3 (.qlog)",
)

QH3_SPEC = PeerSpec(
    name="qh3",
    description="qh3 2.1.0 (PyPI; aioquic fork, Rust crypto/TLS/QPACK) via interop/aioquic",
    serve=_on("qh3", _serve_qh3),
    download=_on("qh3", download),
    parse=parse_json_lines,
    qlog_format="JSON qlog 0.3 (.qlog)",
)
