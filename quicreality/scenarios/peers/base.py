"""Peer adapters: what every peer module provides, and the values they trade in.

A peer adapter is pure: it turns a request (:class:`ServeRequest`, :class:`DownloadRequest`) into
a :class:`Command` (an argv *list*, extra environment, directories to create) and parses the
peer's own output into :class:`TransferResult` rows. Running the command is the caller's job
(see :mod:`quicreality.scenarios.peers.process`). Verdicts about correctness should come from the
files (sha256) and the wire (pcap/qlog); what a peer prints is only a claim.

Each peer module (``curl``, ``ngtcp2``, ``quicgo``, ``aioquic_peer``, ``ours``) exposes ``SPEC``,
a :class:`PeerSpec`; :mod:`quicreality.scenarios.peers` registers them by name::

    from quicreality.scenarios.peers import get_peer
    cmd = get_peer("ngtcp2").serve(ServeRequest(www=..., port=..., cert=..., key=...))
    dl = get_peer("curl").download(DownloadRequest(urls=(url,), out_dir=..., ca=ca))
    results = get_peer("curl").parse(dl_stdout, dl_stderr, request)

Conventions shared by every peer:

* ``GET /bytes/N`` (qrgo and the aioquic peer server; also our stack) returns N bytes where the
  byte at offset ``i`` is ``i % 256`` (see :func:`pattern_bytes`). gtlsserver has no such path.
* Key log: ``SSLKEYLOGFILE`` (NSS key log format), set through :attr:`Command.env` or a flag.
* qlog: one file per connection in ``qlog_dir``; the format depends on the peer
  (ngtcp2 and curl: JSON-SEQ 0.3 ``.sqlog``; aioquic: JSON 0.3 ``.qlog``; quic-go: NDJSON draft-02).
* Ciphers are named by their IANA TLS 1.3 names (:data:`TLS13_CIPHERS`).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: TLS 1.3 cipher suites by IANA name -> code point.
TLS13_CIPHERS: Mapping[str, int] = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
}

_CIPHER_ALIASES = {
    "AES128": "TLS_AES_128_GCM_SHA256",
    "AES256": "TLS_AES_256_GCM_SHA384",
    "CHACHA20": "TLS_CHACHA20_POLY1305_SHA256",
}


class Unsupported(Exception):
    """The peer cannot do what the request asks (quic-interop-runner's exit code 127)."""


def canonical_cipher(name: str) -> str:
    """IANA name for ``name`` (accepts ``chacha20``/``aes128``/``aes256`` and missing ``TLS_``)."""
    key = name.strip().upper()
    key = _CIPHER_ALIASES.get(key, key)
    if not key.startswith("TLS_"):
        key = "TLS_" + key
    if key not in TLS13_CIPHERS:
        raise ValueError(f"unknown TLS 1.3 cipher suite {name!r}")
    return key


@dataclass(frozen=True, slots=True)
class ServeRequest:
    """Serve the files of ``www`` over HTTP/3 on ``host:port``."""

    www: Path
    port: int
    cert: Path
    key: Path
    host: str = "127.0.0.1"
    qlog_dir: Path | None = None
    keylog: Path | None = None
    cipher: str | None = None  #: restrict to one TLS 1.3 suite (IANA name)
    retry: bool = False  #: force a Retry on every connection
    congestion: str | None = None  #: sender congestion control (``cubic``, ``bbr``, ...); None = default


@dataclass(frozen=True, slots=True)
class DownloadRequest:
    """GET each URL over HTTP/3 and write the bodies to ``out_dir/<basename of path>``."""

    urls: tuple[str, ...]
    out_dir: Path
    ca: Path | None = None  #: verify the server with this CA (else see ``insecure``)
    insecure: bool = False  #: do not verify the server at all
    qlog_dir: Path | None = None
    keylog: Path | None = None
    cipher: str | None = None
    timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class Command:
    """A process to start: argv list (never a shell string), env additions, dirs to create."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    make_dirs: tuple[Path, ...] = ()

    def full_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default ``os.environ``) updated with :attr:`env`."""
        env = dict(os.environ if base is None else base)
        env.update(self.env)
        return env

    def prepare(self) -> None:
        """Create :attr:`make_dirs` (peers such as curl and gtlsclient need them to exist)."""
        for d in self.make_dirs:
            Path(d).mkdir(parents=True, exist_ok=True)

    def to_json(self) -> dict[str, Any]:
        """For run manifests."""
        return {"argv": list(self.argv), "env": dict(self.env),
                "cwd": str(self.cwd) if self.cwd else None}


@dataclass(frozen=True, slots=True)
class TransferResult:
    """One URL as the client reported it. ``None`` means the peer does not say."""

    url: str
    status: int | None = None
    bytes: int | None = None
    secs: float | None = None
    proto: str | None = None
    file: Path | None = None
    error: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        """No error and a 2xx status (when a status is known)."""
        return self.error is None and (self.status is None or 200 <= self.status < 300)


ServeBuilder = Callable[[ServeRequest], Command]
DownloadBuilder = Callable[[DownloadRequest], Command]
OutputParser = Callable[[str, str, DownloadRequest], list[TransferResult]]


@dataclass(frozen=True, slots=True)
class PeerSpec:
    """A peer: its name, what it can do, and its pure argv builders / output parser."""

    name: str
    description: str
    serve: ServeBuilder | None = None
    download: DownloadBuilder | None = None
    parse: OutputParser | None = None
    qlog_format: str = ""
    ciphers: bool = True  #: can restrict the TLS 1.3 cipher suite
    verifies_server: bool = True  #: the client can verify the server certificate

    @property
    def roles(self) -> frozenset[str]:
        """``{"server", "client"}`` or a subset."""
        r = set()
        if self.serve is not None:
            r.add("server")
        if self.download is not None:
            r.add("client")
        return frozenset(r)


# ---- helpers shared by adapters, tests and the scenario runner ----------------------------------


def out_name(url: str) -> str:
    """File name a client writes ``url`` to: the last path segment, ``index.html`` for ``/``."""
    from urllib.parse import urlsplit

    base = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    return base or "index.html"


def expected_files(req: DownloadRequest) -> list[Path]:
    """Where each URL's body is expected, in URL order."""
    return [req.out_dir / out_name(u) for u in req.urls]


def url_for(host: str, port: int, path: str) -> str:
    """``https://host:port/path`` with IPv6 literals bracketed."""
    h = f"[{host}]" if ":" in host else host
    return f"https://{h}:{port}/{path.lstrip('/')}"


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects among the lines of ``text`` (other lines are skipped)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
    return out


def parse_json_lines(stdout: str, stderr: str, req: DownloadRequest) -> list[TransferResult]:
    """A ``PeerSpec.parse`` for clients that print our JSON lines (qrgo, the aioquic peer)."""
    return results_from_json_lines(stdout, req)


def results_from_json_lines(text: str, req: DownloadRequest) -> list[TransferResult]:
    """Parse the ``{"url","status","bytes","secs","proto"[,"file","error"]}`` lines of our peers.

    URLs with no line get a result with ``error="no output"``.
    """
    by_url: dict[str, list[dict[str, Any]]] = {}
    for obj in json_lines(text):
        if "url" in obj:
            by_url.setdefault(str(obj["url"]), []).append(obj)
    results = []
    for url, path in zip(req.urls, expected_files(req), strict=False):
        objs = by_url.get(url)
        if not objs:
            results.append(TransferResult(url=url, file=path, error="no output"))
            continue
        o = objs.pop(0)
        results.append(TransferResult(
            url=url,
            status=int(o["status"]) if o.get("status") else None,
            bytes=int(o["bytes"]) if o.get("bytes") is not None else None,
            secs=float(o["secs"]) if o.get("secs") is not None else None,
            proto=o.get("proto"),
            file=Path(o["file"]) if o.get("file") else path,
            error=o.get("error") or None,
            raw=o,
        ))
    return results


def pattern_bytes(n: int, offset: int = 0) -> bytes:
    """The ``/bytes/N`` body: byte ``i`` is ``i % 256`` (``offset`` shifts the start)."""
    block = bytes(range(256))
    start = offset % 256
    reps = (start + n) // 256 + 1
    return (block * reps)[start:start + n]


def pattern_sha256(n: int) -> str:
    """sha256 hex of ``pattern_bytes(n)``, computed in 1 MiB blocks."""
    h = hashlib.sha256()
    block = bytes(range(256)) * 4096  # 1 MiB, a multiple of 256
    full, rest = divmod(n, len(block))
    for _ in range(full):
        h.update(block)
    h.update(block[:rest])
    return h.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """sha256 hex of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port that was free a moment ago (bind to port 0, read it, close)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def udp_bound(port: int, host: str = "127.0.0.1") -> bool:
    """True if some socket on this host (this netns) is bound to UDP ``host:port``.

    Reads ``/proc/net/udp`` / ``udp6``; a wildcard bind (0.0.0.0 / ::) counts as well.
    """
    import ipaddress

    want = ipaddress.ip_address(host)
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local = line.split()[1]
            hexaddr, hexport = local.split(":")
            if int(hexport, 16) != port:
                continue
            raw = bytes.fromhex(hexaddr)
            # /proc stores the address as host-order 32-bit words
            words = [raw[i:i + 4][::-1] for i in range(0, len(raw), 4)]
            addr = ipaddress.ip_address(b"".join(words))
            if addr.is_unspecified or addr == want:
                return True
            if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped == want:
                return True
    return False


def find_missing(paths: Iterable[Path]) -> list[Path]:
    """The paths that do not exist."""
    return [p for p in paths if not Path(p).exists()]
