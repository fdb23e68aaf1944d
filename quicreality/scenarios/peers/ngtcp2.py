"""ngtcp2 0.12 example programs from Debian: ``gtlsserver`` and ``gtlsclient`` (GnuTLS).

Server: ``gtlsserver -q -d WWW [--qlog-dir D] [-V] [--ciphers=PRIO] ADDR PORT KEY CERT``
(``-V`` = address validation, i.e. Retry;
``--cc=cubic|reno|bbr|bbr2`` from :attr:`ServeRequest.congestion`).
qlog: one ``<SCID>.sqlog`` (JSON-SEQ 0.3) per connection.
``/N`` paths are generated content of N bytes (not the ``/bytes/N`` pattern of the other peers).

Client: ``gtlsclient --no-quic-dump --no-http-dump --exit-on-all-streams-close --download DIR
[--qlog-dir D] [--ciphers=PRIO] HOST PORT URL...``. All URLs go on one connection, concurrently,
so they must share one authority. The client does **not** verify the server certificate (there
is no option for it), and exits 0 even on HTTP errors: statuses are parsed from its log on
stderr (``http: stream 0x0 [:status: 200]``). ``--download`` needs the directory to exist.

Neither has a key-log option: GnuTLS honours ``SSLKEYLOGFILE``, set through the environment.
``--ciphers`` takes a GnuTLS priority string, not an IANA name (``--ciphers=TLS_CHACHA20_...``
fails with "gnutls_priority_set_direct failed"); :func:`gnutls_priority` maps one.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from . import paths
from .base import (
    Command,
    DownloadRequest,
    PeerSpec,
    ServeRequest,
    TransferResult,
    Unsupported,
    canonical_cipher,
    expected_files,
)

_GNUTLS_CIPHER = {
    "TLS_AES_128_GCM_SHA256": "AES-128-GCM",
    "TLS_AES_256_GCM_SHA384": "AES-256-GCM",
    "TLS_CHACHA20_POLY1305_SHA256": "CHACHA20-POLY1305",
}
_CC = ("cubic", "reno", "bbr", "bbr2")
_STATUS_RE = re.compile(r"http: stream 0x([0-9a-fA-F]+) \[:status: (\d+)\]")


def gnutls_priority(cipher: str) -> str:
    """GnuTLS priority string allowing only TLS 1.3 with ``cipher`` (IANA name or alias)."""
    return f"NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+{_GNUTLS_CIPHER[canonical_cipher(cipher)]}"


def serve(req: ServeRequest) -> Command:
    """gtlsserver serving ``req.www``."""
    argv: list[str] = [str(paths.gtlsserver()), "-q", "-d", str(req.www)]
    dirs: list[Path] = []
    if req.qlog_dir is not None:
        argv.append(f"--qlog-dir={req.qlog_dir}")
        dirs.append(req.qlog_dir)
    if req.retry:
        argv.append("-V")
    if req.cipher:
        argv.append(f"--ciphers={gnutls_priority(req.cipher)}")
    if req.congestion:
        if req.congestion not in _CC:
            raise Unsupported(f"gtlsserver --cc takes {', '.join(_CC)}, not {req.congestion!r}")
        argv.append(f"--cc={req.congestion}")
    argv += [req.host, str(req.port), str(req.key), str(req.cert)]
    env = {"SSLKEYLOGFILE": str(req.keylog)} if req.keylog is not None else {}
    return Command(argv=tuple(argv), env=env, make_dirs=tuple(dirs))


def download(req: DownloadRequest, *, quiet: bool = False) -> Command:
    """gtlsclient fetching ``req.urls`` (one authority) concurrently on one connection.

    ``quiet=True`` adds ``-q`` (much less output, but no statuses to parse).
    """
    if not req.urls:
        raise ValueError("no URL")
    authorities = {urlsplit(u).netloc for u in req.urls}
    if len(authorities) != 1:
        raise ValueError(f"gtlsclient needs one authority per run, got {sorted(authorities)}")
    first = urlsplit(req.urls[0])
    host, port = first.hostname or "localhost", first.port or 443
    argv: list[str] = [str(paths.gtlsclient())]
    argv += ["-q"] if quiet else ["--no-quic-dump", "--no-http-dump"]
    argv += ["--exit-on-all-streams-close", f"--download={req.out_dir}",
             f"--timeout={max(1, int(req.timeout))}s"]
    dirs: list[Path] = [req.out_dir]
    if req.qlog_dir is not None:
        argv.append(f"--qlog-dir={req.qlog_dir}")
        dirs.append(req.qlog_dir)
    if req.cipher:
        argv.append(f"--ciphers={gnutls_priority(req.cipher)}")
    argv += [host, str(port), *req.urls]
    env = {"SSLKEYLOGFILE": str(req.keylog)} if req.keylog is not None else {}
    return Command(argv=tuple(argv), env=env, make_dirs=tuple(dirs))


def parse(stdout: str, stderr: str, req: DownloadRequest) -> list[TransferResult]:
    """Statuses from the client log (stream 4*i is the i-th URL), sizes from the files."""
    statuses: dict[int, int] = {}
    for m in _STATUS_RE.finditer(stderr + "\n" + stdout):
        statuses.setdefault(int(m.group(1), 16) // 4, int(m.group(2)))
    results = []
    for i, (url, path) in enumerate(zip(req.urls, expected_files(req), strict=False)):
        status = statuses.get(i)
        size = path.stat().st_size if path.exists() else None
        error = None
        if size is None:
            error = "no file downloaded"
        elif status is not None and status >= 400:
            error = f"HTTP status {status}"
        results.append(TransferResult(url=url, status=status, bytes=size, proto="HTTP/3",
                                      file=path, error=error))
    return results


SPEC = PeerSpec(
    name="ngtcp2",
    description="ngtcp2 0.12 gtlsserver/gtlsclient (Debian, GnuTLS)",
    serve=serve,
    download=download,
    parse=parse,
    qlog_format="JSON-SEQ qlog 0.3 (.sqlog)",
    verifies_server=False,
)
