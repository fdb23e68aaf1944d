"""Our own stack's CLI (``python -m quicreality``), driven like any other peer.

Server: ``python -m quicreality server --listen HOST:PORT --cert C --key K --www DIR
[--qlog-dir D] [--keylog F] [--retry]``.
Client: ``python -m quicreality client URL... -o DIR [--insecure | --ca CA] [--qlog-dir D]
[--keylog F]``.
Key logs through ``--keylog`` in both roles: our server ignores ``SSLKEYLOGFILE`` (it writes
secrets only when its command line asks). The client prints one summary line per URL,
``URL BYTES bytes SECS s MBPS Mbit/s`` or ``URL FAILED: reason``; :func:`parse` reads those, and
(leniently) JSON lines or ``key=value`` pairs, and fills sizes from the files. Correctness
must come from the files' sha256, not from these lines.
"""

from __future__ import annotations

import re
from typing import Any

from . import paths
from .base import (
    Command,
    DownloadRequest,
    PeerSpec,
    ServeRequest,
    TransferResult,
    expected_files,
    json_lines,
    results_from_json_lines,
)

_FIELD_RE = re.compile(r"\b(status|bytes|secs|proto|error)\s*[=:]\s*(\"[^\"]*\"|\S+)")
#: The CLI's summary line: ``URL BYTES bytes SECS s MBPS Mbit/s`` or ``URL FAILED: reason``.
_LINE_RE = re.compile(r"^(?P<url>\S+) (?P<bytes>\d+) bytes (?P<secs>[\d.]+) s [\d.]+ Mbit/s$")
_FAILED_RE = re.compile(r"^(?P<url>\S+) FAILED: (?P<reason>.*)$")


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def serve(req: ServeRequest) -> Command:
    """Our HTTP/3 server."""
    argv = [str(paths.python()), "-m", "quicreality", "server",
            "--listen", _hostport(req.host, req.port), "--cert", str(req.cert),
            "--key", str(req.key), "--www", str(req.www)]
    if req.cipher:
        argv += ["--cipher-suites", req.cipher]
    if req.qlog_dir is not None:
        argv += ["--qlog-dir", str(req.qlog_dir)]
    if req.retry:
        argv.append("--retry")
    if req.congestion:
        argv += ["--congestion", req.congestion]
    if req.keylog is not None:
        argv += ["--keylog", str(req.keylog)]
    return Command(argv=tuple(argv), cwd=paths.REPO_ROOT,
                   make_dirs=(req.qlog_dir,) if req.qlog_dir else ())


def download(req: DownloadRequest) -> Command:
    """Our HTTP/3 client."""
    argv = [str(paths.python()), "-m", "quicreality", "client", *req.urls, "-o", str(req.out_dir),
            "--json"]
    if req.cipher:
        argv += ["--cipher-suites", req.cipher]
    if req.insecure:
        argv.append("--insecure")
    elif req.ca is not None:
        argv += ["--ca", str(req.ca)]
    if req.qlog_dir is not None:
        argv += ["--qlog-dir", str(req.qlog_dir)]
    if req.keylog is not None:
        argv += ["--keylog", str(req.keylog)]
    dirs = (req.out_dir, req.qlog_dir) if req.qlog_dir else (req.out_dir,)
    return Command(argv=tuple(argv), cwd=paths.REPO_ROOT, make_dirs=dirs)


def _num(value: str | None, kind: type) -> Any:
    if value is None:
        return None
    try:
        return kind(value.strip('"').rstrip("s,;") if kind is float else value.strip('",;'))
    except ValueError:
        return None


def parse(stdout: str, stderr: str, req: DownloadRequest) -> list[TransferResult]:
    """Lenient: JSON lines, else ``key=value`` fields on the line that names each URL."""
    if any("url" in o for o in json_lines(stdout)):
        results = results_from_json_lines(stdout, req)
    else:
        lines = stdout.splitlines()
        results = []
        for url, path in zip(req.urls, expected_files(req), strict=False):
            line = next((ln for ln in lines if url in ln), "")
            m, f = _LINE_RE.match(line.strip()), _FAILED_RE.match(line.strip())
            if m and m.group("url") == url:
                results.append(TransferResult(url=url, bytes=int(m.group("bytes")),
                                              secs=float(m.group("secs")), proto="HTTP/3",
                                              file=path, raw={"line": line}))
                continue
            if f and f.group("url") == url:
                results.append(TransferResult(url=url, file=path, error=f.group("reason"),
                                              raw={"line": line}))
                continue
            fields = {k: v for k, v in _FIELD_RE.findall(line)}
            results.append(TransferResult(
                url=url, status=_num(fields.get("status"), int), bytes=_num(fields.get("bytes"), int),
                secs=_num(fields.get("secs"), float), proto=fields.get("proto"), file=path,
                error=fields.get("error", "").strip('"') or (None if line else "no output"),
                raw={"line": line}))
    out = []
    for r in results:  # sizes from the files when the line did not say
        if r.bytes is None and r.file is not None and r.file.exists():
            r = TransferResult(url=r.url, status=r.status, bytes=r.file.stat().st_size,
                               secs=r.secs, proto=r.proto, file=r.file,
                               error=None if r.error == "no output" else r.error, raw=r.raw)
        out.append(r)
    return out


SPEC = PeerSpec(
    name="ours",
    description="quicreality's own QUIC/TLS/HTTP/3 stack (python -m quicreality)",
    serve=serve,
    download=download,
    parse=parse,
    qlog_format="JSON-SEQ qlog 0.3 (.sqlog)",
    ciphers=True,
)
