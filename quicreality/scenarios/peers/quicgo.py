"""quic-go 0.29 (Debian) through our ``qrgo`` program (interop/quicgo/src/qrgo/main.go).

Server: ``qrgo -mode server -addr HOST:PORT -cert C -key K -www DIR [-qlog-dir D] [-keylog F]
[-cipher NAME] [-retry]``; prints ``{"event":"listening","addr":...}`` once bound; serves
``/bytes/N`` (byte i = i % 256) besides the files.
Client: ``qrgo -mode client [-insecure | -ca CA] -o DIR [-qlog-dir D] [-keylog F] [-cipher NAME]
[-timeout Ns] URL...``; one JSON line per URL.
qlog: ``<odcid>_<client|server>.qlog``, NDJSON draft-02. quic-go 0.29's qtls honours
``tls.Config.CipherSuites`` for TLS 1.3, so ``-cipher`` works on both sides.
"""

from __future__ import annotations

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


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def serve(req: ServeRequest) -> Command:
    """qrgo server."""
    argv = [str(paths.qrgo()), "-mode", "server", "-addr", _hostport(req.host, req.port),
            "-cert", str(req.cert), "-key", str(req.key), "-www", str(req.www)]
    if req.qlog_dir is not None:
        argv += ["-qlog-dir", str(req.qlog_dir)]
    if req.keylog is not None:
        argv += ["-keylog", str(req.keylog)]
    if req.cipher:
        argv += ["-cipher", canonical_cipher(req.cipher)]
    if req.retry:
        argv.append("-retry")
    if req.congestion:
        raise Unsupported("quic-go 0.29 has no congestion-control choice (NewReno only)")
    return Command(argv=tuple(argv))


def download(req: DownloadRequest) -> Command:
    """qrgo client."""
    argv = [str(paths.qrgo()), "-mode", "client", "-o", str(req.out_dir),
            "-timeout", f"{req.timeout:g}s"]
    if req.insecure:
        argv.append("-insecure")
    elif req.ca is not None:
        argv += ["-ca", str(req.ca)]
    if req.qlog_dir is not None:
        argv += ["-qlog-dir", str(req.qlog_dir)]
    if req.keylog is not None:
        argv += ["-keylog", str(req.keylog)]
    if req.cipher:
        argv += ["-cipher", canonical_cipher(req.cipher)]
    argv += list(req.urls)
    return Command(argv=tuple(argv))


SPEC = PeerSpec(
    name="quicgo",
    description="quic-go 0.29 (Debian) via qrgo",
    serve=serve,
    download=download,
    parse=parse_json_lines,
    qlog_format="NDJSON qlog draft-02 (.qlog)",
)
