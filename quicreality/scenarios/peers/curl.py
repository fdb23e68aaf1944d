"""curl 7.88.1 with HTTP/3 (GnuTLS + ngtcp2 0.12 + nghttp3 0.8), built by scripts/setup.sh. Client only.

argv: ``curl --http3-only -sS --create-dirs -w '%{json}\\n' [--cacert CA | -k] -o FILE URL ...``.
``SSLKEYLOGFILE`` and ``QLOGDIR`` (which must exist: it is in :attr:`Command.make_dirs`) come
from the environment; curl writes ``<SCID>.sqlog`` (JSON-SEQ) per connection.
curl 7.88's GnuTLS QUIC code hard-codes its priority string, so a cipher restriction is
:class:`~.base.Unsupported`.
"""

from __future__ import annotations

from pathlib import Path

from . import paths
from .base import (
    Command,
    DownloadRequest,
    PeerSpec,
    TransferResult,
    Unsupported,
    expected_files,
    json_lines,
)


def download(req: DownloadRequest) -> Command:
    """curl fetching ``req.urls`` (one connection per authority, reused) over HTTP/3 only."""
    if req.cipher:
        raise Unsupported("curl 7.88.1/GnuTLS cannot restrict QUIC cipher suites")
    argv: list[str] = [str(paths.curl_h3()), "--http3-only", "-sS", "--create-dirs",
                       "--max-time", f"{req.timeout:g}", "-w", "%{json}\\n"]
    if req.insecure:
        argv.append("-k")
    elif req.ca is not None:
        argv += ["--cacert", str(req.ca)]
    for url, out in zip(req.urls, expected_files(req), strict=False):
        argv += ["-o", str(out), url]
    env: dict[str, str] = {}
    dirs: list[Path] = [req.out_dir]
    if req.keylog is not None:
        env["SSLKEYLOGFILE"] = str(req.keylog)
    if req.qlog_dir is not None:
        env["QLOGDIR"] = str(req.qlog_dir)
        dirs.append(req.qlog_dir)
    return Command(argv=tuple(argv), env=env, make_dirs=tuple(dirs))


def parse(stdout: str, stderr: str, req: DownloadRequest) -> list[TransferResult]:
    """One result per URL from curl's ``-w '%{json}'`` objects (matched by ``urlnum``)."""
    objs = {int(o.get("urlnum", i)): o for i, o in enumerate(json_lines(stdout))}
    results = []
    for i, (url, path) in enumerate(zip(req.urls, expected_files(req), strict=False)):
        o = objs.get(i)
        if o is None:
            err = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
            results.append(TransferResult(url=url, file=path, error=err))
            continue
        o = {k: v for k, v in o.items() if k != "certs"}  # big PEM blob, not needed
        code = int(o.get("response_code") or o.get("http_code") or 0)
        error = None
        if int(o.get("exitcode") or 0) != 0:
            error = o.get("errormsg") or f"curl exit code {o.get('exitcode')}"
        elif code >= 400:
            error = f"HTTP status {code}"
        version = str(o.get("http_version") or "")
        results.append(TransferResult(
            url=url,
            status=code or None,
            bytes=int(o["size_download"]) if o.get("size_download") is not None else None,
            secs=float(o["time_total"]) if o.get("time_total") is not None else None,
            proto=f"HTTP/{version}" if version else None,
            file=Path(o.get("filename_effective") or path),
            error=error,
            raw=o,
        ))
    return results


SPEC = PeerSpec(
    name="curl",
    description="curl 7.88.1 + GnuTLS + ngtcp2 0.12 + nghttp3 0.8 (client)",
    download=download,
    parse=parse,
    qlog_format="JSON-SEQ qlog 0.3 (.sqlog)",
    ciphers=False,
)
