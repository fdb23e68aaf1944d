"""Peer adapters: QIR's endpoint contract (``ROLE``, ``TESTCASE``, ...) mapped to real argv.

Theory of operation
-------------------
quic-interop-runner starts every implementation's ``run_endpoint.sh`` with the environment
``ROLE`` (client|server), ``TESTCASE``, ``REQUESTS`` (space-separated URLs), ``SSLKEYLOGFILE``
and ``QLOGDIR``; the script maps the test case to its program's flags, or exits 127 when the
program cannot do it.  Here :func:`plan` is that script, for every peer, as a pure function of
an :class:`Endpoint`: it returns the commands to run one after the other (a client that must
make several connections, e.g. ``multiconnect`` or ``resumption``, gets several commands) or
raises :class:`~quicreality.scenarios.peers.base.Unsupported` with the reason (exit 127).

The base argv of each peer comes from the scenario runner's adapters
(:mod:`quicreality.scenarios.peers`); this module only adds what a test case needs.  What a
peer cannot do is said from its real command line (``--help`` of the program we run), never
assumed: our own CLI is probed (:func:`ours_flags`), so a feature landing on main (e.g.
``--session-ticket``) turns its cases from 127 into a real verdict without a change here.

Extra environment beyond QIR's (all paths): ``DOWNLOADS`` (client output), ``WWW`` (served
files), ``CERTS`` (``cert.pem``, ``priv.key``, ``ca.pem``), ``QR_LISTEN`` (server
``HOST:PORT``), ``QR_PREFERRED`` (the server's preferred address for ``connectionmigration``),
``QR_SCRATCH`` (a per-endpoint directory for ticket and transport-parameter files),
``QR_OURS_FLAGS`` (our CLI's options, probed once by the runner).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from ..scenarios.peers import chromium_fetch, get_peer, paths
from ..scenarios.peers.base import Command, DownloadRequest, ServeRequest, Unsupported

__all__ = ["CLIENTS", "EXIT_UNSUPPORTED", "SERVERS", "Endpoint", "ours_flags", "plan"]

#: QIR's "unsupported" exit status.
EXIT_UNSUPPORTED = 127
#: Peers by role (names as in :mod:`quicreality.scenarios.peers`).
SERVERS = ("ours", "aioquic", "qh3", "quicgo", "ngtcp2")
CLIENTS = ("ours", "aioquic", "qh3", "quicgo", "ngtcp2", "curl", "chromium")

#: A reserved version that forces Version Negotiation (RFC 9000 §15: 0x?a?a?a?a).
RESERVED = "1a2a3a4a"
CHACHA20 = "TLS_CHACHA20_POLY1305_SHA256"
#: Endpoint-level test case names (what ``TESTCASE`` may say).
TESTCASES = ("handshake", "transfer", "http3", "multiconnect", "chacha20", "retry",
             "resumption", "zerortt", "keyupdate", "ecn", "v2", "versionnegotiation",
             "connectionmigration")
_PLAIN = ("handshake", "transfer", "http3")
#: The client's ``--versions`` for v2 (start in v1, offer v2: RFC 9368 compatible negotiation)
#: and versionnegotiation (start in a reserved version, fall back to v1 on the VN packet).
_VERSIONS = {"v2": "v1,v2", "versionnegotiation": f"0x{RESERVED},v1"}
#: Our client's options for those: for v2 it starts in v1 but lists v2 first in Available
#: Versions, its preference order (RFC 9368 §3), so a server that picks by the client's order
#: (aioquic, qh3) moves it to v2 too.
_OURS_VERSIONS = {"v2": ("--versions", "v2,v1", "--initial-version", "v1"),
                  "versionnegotiation": ("--versions", _VERSIONS["versionnegotiation"])}
#: The server's ``--versions`` for v2: prefer v2, accept v1.
_SERVER_V2 = "v2,v1"
_AIOQUIC = ("aioquic", "qh3")
#: keyupdate: Chromium initiates a key update after this many packets sent in a key phase
#: (quiche's default waits for the AEAD confidentiality limit less 1000: millions of packets;
#: its client sends ~350 packets while it fetches keyupdate's 3 MB on loopback, measured).
CHROMIUM_KEY_UPDATE_PACKETS = 100
_NGTCP2_V2 = ("ngtcp2 0.12 (Debian) implements only the v2 draft (0x709a50c4, alias v2draft), "
              "not RFC 9369 v2")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What the endpoint contract gives an adapter (see the module docstring)."""

    peer: str
    role: str
    testcase: str
    requests: tuple[str, ...] = ()
    keylog: Path | None = None
    qlog_dir: Path | None = None
    downloads: Path = Path("/downloads")
    www: Path = Path("/www")
    certs: Path = Path("/certs")
    listen: str = "0.0.0.0:443"
    preferred: str = ""
    scratch: Path = Path("/tmp")
    timeout: float = 60.0

    @classmethod
    def from_env(cls, peer: str, env: Mapping[str, str]) -> Endpoint:
        """Read the contract's variables (``ROLE`` and ``TESTCASE`` are required)."""
        role, tc = env.get("ROLE", ""), env.get("TESTCASE", "")
        if role not in ("client", "server"):
            raise ValueError(f"ROLE must be client or server, got {role!r}")
        if not tc:
            raise ValueError("TESTCASE is not set")

        def path(key: str, default: str) -> Path:
            return Path(env.get(key) or default)

        return cls(peer=peer, role=role, testcase=tc,
                   requests=tuple(env.get("REQUESTS", "").split()),
                   keylog=Path(env["SSLKEYLOGFILE"]) if env.get("SSLKEYLOGFILE") else None,
                   qlog_dir=Path(env["QLOGDIR"]) if env.get("QLOGDIR") else None,
                   downloads=path("DOWNLOADS", "/downloads"), www=path("WWW", "/www"),
                   certs=path("CERTS", "/certs"), listen=env.get("QR_LISTEN") or "0.0.0.0:443",
                   preferred=env.get("QR_PREFERRED", ""), scratch=path("QR_SCRATCH", "/tmp"),
                   timeout=float(env.get("QR_TIMEOUT") or 60.0))

    def serve_request(self, **kw: object) -> ServeRequest:
        """The scenario runner's server request for this endpoint."""
        host, _, port = self.listen.rpartition(":")
        return ServeRequest(www=self.www, port=int(port), cert=self.certs / "cert.pem",
                            key=self.certs / "priv.key", host=host.strip("[]"),
                            qlog_dir=self.qlog_dir, keylog=self.keylog, **kw)  # type: ignore[arg-type]

    def download_request(self, urls: tuple[str, ...] | None = None,
                         **kw: object) -> DownloadRequest:
        """The scenario runner's client request for ``urls`` (default: all of REQUESTS)."""
        return DownloadRequest(urls=self.requests if urls is None else urls,
                               out_dir=self.downloads, ca=self.certs / "ca.pem",
                               qlog_dir=self.qlog_dir, keylog=self.keylog, timeout=self.timeout,
                               **kw)  # type: ignore[arg-type]


@functools.cache
def ours_flags() -> frozenset[str]:
    """The long options of ``python -m quicreality client --help`` and ``server --help``,
    prefixed with the role (``client:--0rtt``, ``server:--retry``).

    The runner probes once per run and hands the result to every endpoint in
    ``QR_OURS_FLAGS`` (space-separated), which saves two interpreter starts per endpoint.
    """
    if os.environ.get("QR_OURS_FLAGS"):
        return frozenset(os.environ["QR_OURS_FLAGS"].split())
    out: set[str] = set()
    procs = {role: subprocess.Popen([sys.executable, "-m", "quicreality", role, "--help"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    stdin=subprocess.DEVNULL, text=True)
             for role in ("client", "server")}  # both at once: two interpreter starts in one
    for role, p in procs.items():
        try:
            text, _ = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            text, _ = p.communicate()
        for word in text.replace("[", " ").replace("]", " ").replace(",", " ").split():
            if word.startswith("--"):
                out.add(f"{role}:{word.split('=')[0]}")
    return frozenset(out)


@functools.cache
def qrgo_flags() -> frozenset[str]:
    """The flags of the installed qrgo (``qrgo -h``), e.g. ``-0rtt``; empty if it cannot run."""
    try:
        r = subprocess.run([str(paths.qrgo()), "-h"], capture_output=True, text=True, timeout=30,
                           check=False)
    except (OSError, subprocess.SubprocessError, paths.PeerNotInstalled):
        return frozenset()
    return frozenset(w.split("=")[0] for w in (r.stdout + r.stderr).split()
                     if w.startswith("-") and len(w) > 1)


def _need(flags: frozenset[str], *wanted: str) -> None:
    missing = [w for w in wanted if w not in flags]
    if missing:
        raise Unsupported(f"our CLI in this checkout has no {', '.join(missing)}")


def _one_per_url(ep: Endpoint, make: Callable[[tuple[str, ...]], Command]) -> list[Command]:
    if not ep.requests:
        raise ValueError("REQUESTS is empty")
    return [make((u,)) for u in ep.requests]


def _split_first(ep: Endpoint) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """QIR's resumption/zerortt: the first URL on connection 1, the others on connection 2."""
    if len(ep.requests) < 2:
        raise ValueError(f"{ep.testcase} needs at least 2 REQUESTS")
    return ep.requests[:1], ep.requests[1:]


def _add(cmd: Command, *args: str) -> Command:
    """``cmd`` with ``args`` inserted before its URL arguments (ours: after the subcommand)."""
    return replace(cmd, argv=(*cmd.argv, *args))


# ------------------------------------------------------------------ ours


def _ours_client(ep: Endpoint, flags: frozenset[str]) -> list[Command]:
    spec = get_peer("ours")
    assert spec.download is not None
    tc = ep.testcase

    def dl(urls: tuple[str, ...], *extra: str, cipher: str | None = None) -> Command:
        cmd = spec.download(ep.download_request(urls, cipher=cipher))  # type: ignore[misc]
        return _add(cmd, "--timeout", f"{ep.timeout:g}", *extra)

    if tc in _PLAIN or tc == "retry":
        return [dl(ep.requests)]
    if tc == "multiconnect":
        if "client:--connection-per-url" in flags:  # one process: no interpreter start each
            return [dl(ep.requests, "--connection-per-url")]
        return _one_per_url(ep, dl)
    if tc == "chacha20":
        return [dl(ep.requests, cipher=CHACHA20)]
    if tc in ("resumption", "zerortt"):
        _need(flags, "client:--session-ticket", *(("client:--0rtt",) if tc == "zerortt" else ()))
        first, rest = _split_first(ep)
        ticket = str(ep.scratch / "session-ticket.bin")
        second = ("--0rtt",) if tc == "zerortt" else ()
        return [dl(first, "--session-ticket", ticket), dl(rest, "--session-ticket", ticket, *second)]
    if tc == "keyupdate":
        _need(flags, "client:--key-update")
        return [dl(ep.requests, "--key-update")]
    if tc == "ecn":
        _need(flags, "client:--ecn")
        return [dl(ep.requests, "--ecn")]
    if tc in _OURS_VERSIONS:
        _need(flags, "client:--versions", *(("client:--initial-version",) if tc == "v2" else ()))
        return [dl(ep.requests, *_OURS_VERSIONS[tc])]
    if tc == "connectionmigration":
        _need(flags, "client:--migrate")
        return [dl(ep.requests, "--migrate")]
    raise Unsupported(f"ours has no client mapping for TESTCASE={tc}")


def _ours_server(ep: Endpoint, flags: frozenset[str]) -> list[Command]:
    spec = get_peer("ours")
    assert spec.serve is not None
    tc = ep.testcase
    if tc in (*_PLAIN, "multiconnect", "keyupdate", "versionnegotiation"):
        return [spec.serve(ep.serve_request())]
    if tc == "retry":
        return [spec.serve(ep.serve_request(retry=True))]
    if tc == "chacha20":
        return [spec.serve(ep.serve_request(cipher=CHACHA20))]
    if tc in ("resumption", "zerortt"):
        # tickets and 0-RTT on the server come with the same feature as the client flags
        _need(flags, "client:--session-ticket", *(("client:--0rtt",) if tc == "zerortt" else ()))
        return [spec.serve(ep.serve_request())]
    if tc == "ecn":
        _need(flags, "server:--ecn")
        return [_add(spec.serve(ep.serve_request()), "--ecn")]
    if tc == "v2":
        _need(flags, "server:--versions")
        return [_add(spec.serve(ep.serve_request()), "--versions", _SERVER_V2)]
    if tc == "connectionmigration":
        _need(flags, "server:--preferred-address")
        if not ep.preferred:
            raise ValueError("connectionmigration needs QR_PREFERRED (HOST:PORT)")
        return [_add(spec.serve(ep.serve_request()), "--preferred-address", ep.preferred)]
    raise Unsupported(f"ours has no server mapping for TESTCASE={tc}")


# ------------------------------------------------------------------ other peers


def _simple_client(ep: Endpoint, *, chacha: bool = True,
                   make: Callable[[DownloadRequest], Command] | None = None) -> list[Command]:
    """Peers whose programs only fetch URLs (qrgo, curl, Chromium's DevTools runner), and the
    aioquic/qh3 script. ``make``: the download command (default: the peer's scenario adapter)."""
    if make is None:
        spec = get_peer(ep.peer)
        assert spec.download is not None
        make = spec.download
    tc = ep.testcase
    if tc in _PLAIN or tc == "retry":
        return [make(ep.download_request())]
    if tc == "multiconnect":
        return _one_per_url(ep, lambda u: make(ep.download_request(u)))
    if tc == "chacha20" and chacha:
        return [make(ep.download_request(cipher=CHACHA20))]
    if ep.peer in _AIOQUIC:  # interop/aioquic/h3client.py: --session-ticket, --0rtt, --key-update,
        if tc in _VERSIONS:  # --versions (the first is the version of the first Initial)
            return [_before_urls(make(ep.download_request()), ep.requests,
                                 ("--versions", _VERSIONS[tc]))]
        if tc in ("resumption", "zerortt"):
            first, rest = _split_first(ep)
            ticket = ("--session-ticket", str(ep.scratch / "session-ticket.pickle"))
            second = (*ticket, "--0rtt") if tc == "zerortt" else ticket
            return [_before_urls(make(ep.download_request(first)), first, ticket),
                    _before_urls(make(ep.download_request(rest)), rest, second)]
        if tc == "keyupdate":
            return [_before_urls(make(ep.download_request()), ep.requests, ("--key-update",))]
    if ep.peer == "quicgo" and tc in ("resumption", "zerortt"):
        # qrgo keeps the ticket in its process: one command, two connections (QIR's split)
        _split_first(ep)
        flag = "-resumption" if tc == "resumption" else "-0rtt"
        if flag not in qrgo_flags():
            raise Unsupported(f"the installed qrgo has no {flag} (scripts/setup.sh rebuilds it)")
        return [_before_urls(make(ep.download_request()), ep.requests, (flag,))]
    raise Unsupported(f"{ep.peer}'s client program has no option for TESTCASE={tc}")


def _chromium_client(ep: Endpoint) -> list[Command]:
    """A browser fetches: handshake, transfer, http3, multiplexing, retry; one browser per
    connection for multiconnect; for resumption and zerortt one browser fetches the first URL,
    closes its connections (``chrome.benchmarking.closeConnections()``: the session tickets
    stay cached) and fetches the rest on a new connection, which resumes and, for zerortt,
    sends the GETs in 0-RTT (for resumption 0-RTT is turned off, as ngtcp2's
    ``--disable-early-data``); for keyupdate it initiates a key update every
    :data:`CHROMIUM_KEY_UPDATE_PACKETS` packets. The last two are quiche flags set through
    Chromium's QUIC field trial (:mod:`~quicreality.scenarios.peers.chromium_fetch`). No switch
    was found for ciphers, ECN, migration or versionnegotiation; for v2, Chromium 156 with
    ``--quic-version=RFCv1,RFCv2`` lists only v1 in its version_information (no compatible
    negotiation to v2) and with ``RFCv2`` starts in v2, which QIR's v2 case fails (measured)."""
    tc = ep.testcase
    extra: tuple[str, ...] = ()
    if tc in ("resumption", "zerortt"):
        _split_first(ep)
        extra = ("--new-connection-after", "1", *(("--no-0rtt",) if tc == "resumption" else ()))
    elif tc == "keyupdate":
        extra = ("--key-update-after", str(CHROMIUM_KEY_UPDATE_PACKETS))
    if extra:
        cmd = chromium_fetch.download(ep.download_request())
        return [_before_urls(cmd, ep.requests, extra)]
    return _simple_client(ep, chacha=False, make=chromium_fetch.download)


def _before_urls(cmd: Command, urls: tuple[str, ...], extra: tuple[str, ...]) -> Command:
    """``cmd`` with ``extra`` inserted before its trailing ``urls``."""
    argv = cmd.argv[:len(cmd.argv) - len(urls)]
    assert cmd.argv[len(argv):] == urls, cmd.argv
    return replace(cmd, argv=(*argv, *extra, *urls))


def _simple_server(ep: Endpoint, *, chacha: bool = True) -> list[Command]:
    spec = get_peer(ep.peer)
    assert spec.serve is not None
    tc = ep.testcase
    if tc in (*_PLAIN, "multiconnect", "keyupdate", "versionnegotiation"):
        return [spec.serve(ep.serve_request())]
    if tc == "retry":
        return [spec.serve(ep.serve_request(retry=True))]
    if tc == "chacha20" and chacha:
        return [spec.serve(ep.serve_request(cipher=CHACHA20))]
    if tc in ("resumption", "zerortt") and ep.peer in _AIOQUIC:
        return [_add(spec.serve(ep.serve_request()), "--tickets")]
    if tc in ("resumption", "zerortt") and ep.peer == "quicgo":
        # quic-go 0.29's server issues tickets (crypto/tls) and its http3 server listens with
        # quic.ListenEarly, which accepts 0-RTT: nothing to add
        return [spec.serve(ep.serve_request())]
    if tc == "v2" and ep.peer in _AIOQUIC:
        return [_add(spec.serve(ep.serve_request()), "--versions", _SERVER_V2)]
    raise Unsupported(f"{ep.peer}'s server program has no option for TESTCASE={tc}")


def _ngtcp2_client(ep: Endpoint) -> list[Command]:
    """gtlsclient: QIR's ngtcp2 mapping (session/tp files, --key-update, -v, --other-versions)."""
    spec = get_peer("ngtcp2")
    assert spec.download is not None
    tc = ep.testcase

    def dl(urls: tuple[str, ...], *extra: str, cipher: str | None = None) -> Command:
        cmd = spec.download(ep.download_request(urls, cipher=cipher))  # type: ignore[misc]
        argv = list(cmd.argv)
        host_at = len(argv) - len(urls) - 2  # ... HOST PORT URL...
        return replace(cmd, argv=(*argv[:host_at], *extra, *argv[host_at:]))

    if tc in _PLAIN or tc in ("retry", "ecn"):
        return [dl(ep.requests)]
    if tc == "multiconnect":
        return _one_per_url(ep, dl)
    if tc == "chacha20":
        return [dl(ep.requests, cipher=CHACHA20)]
    if tc in ("resumption", "zerortt"):
        first, rest = _split_first(ep)
        files: tuple[str, ...] = (f"--session-file={ep.scratch / 'session.pem'}",
                                  f"--tp-file={ep.scratch / 'tp.txt'}")
        if tc == "resumption":
            files = (*files, "--disable-early-data")
        return [dl(first, *files), dl(rest, *files)]
    if tc == "keyupdate":
        return [dl(ep.requests, "--key-update=1ms")]
    if tc == "v2":
        raise Unsupported(_NGTCP2_V2)
    if tc == "versionnegotiation":
        return [dl(ep.requests, f"--version=0x{RESERVED}")]
    if tc == "connectionmigration":
        return [dl(ep.requests)]  # gtlsclient migrates to a preferred_address by default
    raise Unsupported(f"ngtcp2 has no client mapping for TESTCASE={tc}")


def _ngtcp2_server(ep: Endpoint) -> list[Command]:
    spec = get_peer("ngtcp2")
    assert spec.serve is not None
    tc = ep.testcase
    if tc in (*_PLAIN, "multiconnect", "keyupdate", "versionnegotiation", "resumption",
              "zerortt", "ecn"):
        return [spec.serve(ep.serve_request())]
    if tc == "retry":
        return [spec.serve(ep.serve_request(retry=True))]
    if tc == "chacha20":
        return [spec.serve(ep.serve_request(cipher=CHACHA20))]
    if tc == "v2":
        raise Unsupported(_NGTCP2_V2)
    if tc == "connectionmigration":
        if not ep.preferred:
            raise ValueError("connectionmigration needs QR_PREFERRED (HOST:PORT)")
        cmd = spec.serve(ep.serve_request())
        return [replace(cmd, argv=(cmd.argv[0], f"--preferred-ipv4-addr={ep.preferred}",
                                   *cmd.argv[1:]))]
    raise Unsupported(f"ngtcp2 has no server mapping for TESTCASE={tc}")


def plan(ep: Endpoint, flags: frozenset[str] | None = None) -> list[Command]:
    """The commands the endpoint runs, in order; raises ``Unsupported`` (exit 127).

    ``flags``: our CLI's options (default: probed with :func:`ours_flags`; only used for
    ``ours``).  Raises ``ValueError`` for a malformed endpoint (missing REQUESTS, ...).
    """
    if ep.testcase not in TESTCASES:
        raise Unsupported(f"unknown TESTCASE={ep.testcase}")
    if ep.role == "client" and ep.testcase != "versionnegotiation" and not ep.requests:
        raise ValueError("REQUESTS is empty")
    if ep.peer == "ours":
        f = ours_flags() if flags is None else flags
        return _ours_client(ep, f) if ep.role == "client" else _ours_server(ep, f)
    if ep.peer == "ngtcp2":
        return _ngtcp2_client(ep) if ep.role == "client" else _ngtcp2_server(ep)
    if ep.role == "client" and ep.peer == "chromium":
        return _chromium_client(ep)
    if ep.role == "client" and ep.peer in CLIENTS:
        return _simple_client(ep, chacha=ep.peer != "curl")
    if ep.role == "server" and ep.peer in SERVERS:
        return _simple_server(ep)
    raise Unsupported(f"{ep.peer} has no {ep.role} role")
