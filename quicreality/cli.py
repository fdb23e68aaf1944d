"""Command line: ``python -m quicreality server|client ...`` (a stable contract for scripts and tests)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from .quic.admission import DEFAULT_MAX_HANDSHAKES
from .quic.config import QuicConfiguration


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def _cipher_suites(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    from .tls.hkdf import CipherSuite

    names = {s.name: int(s) for s in CipherSuite}
    names.update({"TLS_" + s.name: int(s) for s in CipherSuite})
    out = []
    for part in text.split(","):
        key = part.strip().upper()
        if key not in names:
            raise CliError(f"unknown cipher suite {part!r} "
                           f"(choose from {', '.join(s.name for s in CipherSuite)})")
        out.append(names[key])
    return tuple(out)


def _add_common(p: argparse.ArgumentParser, *, server: bool = False) -> None:
    p.add_argument("--qlog-dir", help="write one qlog (JSON-SEQ) per connection here (default: $QLOGDIR)")
    p.add_argument("--qlog-flavour", choices=["0.3", "draft"], default="0.3",
                   help="qlog event names: 0.3 (qvis, default) or the current draft")
    p.add_argument("--keylog", metavar="FILE",
                   help=("append TLS secrets in NSS format to FILE (mode 0600; $SSLKEYLOGFILE "
                         "is ignored by servers)") if server else
                   "append TLS secrets in NSS format to FILE (mode 0600; default: $SSLKEYLOGFILE)")
    p.add_argument("--cipher-suites", help="comma-separated, e.g. CHACHA20_POLY1305_SHA256")
    p.add_argument("--congestion", default="cubic",
                   help=("congestion controller: cubic (default; RFC 9438 with alpha 1 in its "
                         "Reno-friendly region, as ngtcp2 and quic-go), cubic-rfc9438 (alpha "
                         "0.53 there, as Linux TCP), newreno, bbr (v1) or bbr3 "
                         "(draft-ietf-ccwg-bbr)"))
    p.add_argument("--ecn", action=argparse.BooleanOptionalAction, default=True,
                   help="mark ECT(0), read ECN codepoints and validate ECN (RFC 9000 §13.4; "
                        "default: on)")
    p.add_argument("--max-datagram-size", type=int, default=1452,
                   help="cap on the UDP payload size path MTU discovery (DPLPMTUD, RFC 8899) may "
                        "reach after the handshake; it starts at 1200 and probes upwards "
                        "(default 1452; 1200 turns probing off)")
    p.add_argument("--ack-every", type=int, default=2, metavar="N",
                   help="acknowledge every N-th in-order 1-RTT packet of a fast flow once 100 "
                        "have arrived (ACK decimation; default 2, RFC 9000 §13.2.2)")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (documented in README and docs/cli.md)."""
    parser = argparse.ArgumentParser(prog="python -m quicreality",
                                     description="QUIC v1 + TLS 1.3 + HTTP/3 in Python, with REALITY")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("server", help="serve files over HTTP/3")
    s.add_argument("--listen", required=True, metavar="HOST:PORT")
    s.add_argument("--cert", help="PEM certificate chain")
    s.add_argument("--key", help="PEM private key")
    s.add_argument("--www", help="directory to serve (GET /bytes/N always works)")
    s.add_argument("--retry", action="store_true", help="require address validation with Retry")
    s.add_argument("--preferred-address", metavar="HOST:PORT",
                   help="advertise this IP address and port as preferred_address (RFC 9000 §9.6) "
                        "and listen there too")
    s.add_argument("--max-handshakes", type=int, default=DEFAULT_MAX_HANDSHAKES, metavar="N",
                   help="handshakes in progress before new Initials are answered with Retry "
                        "(default %(default)s; not with --reality-config, whose gate has its limits)")
    s.add_argument("--relay-config", metavar="FILE",
                   help="TOML whose [relay] table allows relay destinations (default: refuse all)")
    s.add_argument("--metrics-listen", metavar="HOST:PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics and, with "
                        "--reality-config, a status page (HTML) at http://HOST:PORT/")
    from .aio import reality_cli

    reality_cli.add_server_options(s)
    s.add_argument("--versions", default="v1,v2", metavar="LIST",
                   help="QUIC versions we accept, in preference order: a client's Initial in "
                        "another one gets Version Negotiation, and one in a compatible version "
                        "we prefer is moved to it (RFC 9368; e.g. v2,v1 moves v1 clients that "
                        "offer v2). Default: %(default)s")
    _add_common(s, server=True)

    c = sub.add_parser("client", help="download URLs over HTTP/3")
    c.add_argument("urls", nargs="+", metavar="URL")
    c.add_argument("-o", "--output-dir", help="write each body here (basename of the URL path)")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--insecure", action="store_true", help="do not verify the server certificate")
    g.add_argument("--ca", help="PEM CA file to verify the server certificate against")
    c.add_argument("--server-name", help="SNI to send (default: the URL host if it is a name)")
    c.add_argument("--timeout", type=float, default=300.0, help="overall timeout in seconds")
    c.add_argument("--json", action="store_true",
                   help="print one JSON object per URL instead of the summary line")
    c.add_argument("--session-ticket", metavar="FILE",
                   help="resume with the session ticket in FILE if it exists, and save the "
                        "tickets the server issues to it (mode 0600)")
    c.add_argument("--0rtt", dest="zero_rtt", action="store_true",
                   help="send the requests as 0-RTT when the ticket allows it (they are resent "
                        "in 1-RTT if the server rejects 0-RTT)")
    c.add_argument("--key-update", action="store_true",
                   help="initiate a key update once the handshake is confirmed (RFC 9001 §6)")
    c.add_argument("--initial-layout", choices=["minimal", "chrome"], default=None,
                   help="first Initial flight only: minimal or chrome (Chromium 156's packets, "
                        "frames, datagram sizes and a zero-length SCID); default: the "
                        "fingerprint's")
    c.add_argument("--migrate", action="store_true",
                   help="once the handshake is confirmed, migrate to a new local port (to the "
                        "server's preferred_address if it offered one; RFC 9000 §9.2, §9.6)")
    c.add_argument("--connection-per-url", action="store_true",
                   help="a new connection for each URL, one after the other, stopping at the "
                        "first that fails (quic-interop-runner's multiconnect; default: one "
                        "connection per authority)")
    reality_cli.add_client_options(c)
    c.add_argument("--versions", default="v1", metavar="LIST",
                   help="QUIC versions we speak, in preference order, e.g. v1,v2: the first "
                        "Initial uses the first, all are offered in version_information "
                        "(RFC 9368; a server may move us to one it prefers), and after Version "
                        "Negotiation we start again in the first one the server lists. Default: "
                        "%(default)s (v1 only: no version_information, as before RFC 9368)")
    c.add_argument("--initial-version", metavar="V",
                   help="the version of the first Initial when it is not the first of "
                        "--versions, e.g. --versions v2,v1 --initial-version v1: start in v1 "
                        "and offer v2 as preferred (RFC 9368 compatible negotiation)")
    _add_common(c)
    reality_cli.add_keygen_parser(sub)

    from .aio.relay_cli import add_relay_client_parser

    add_relay_client_parser(sub, _add_common)
    return parser


def _transport_options(args: argparse.Namespace) -> dict[str, object]:
    opts: dict[str, object] = {"congestion_control_algorithm": args.congestion,
                               "max_datagram_size": args.max_datagram_size, "ecn": args.ecn,
                               "ack_every": args.ack_every}
    suites = _cipher_suites(args.cipher_suites)
    if suites:
        opts["cipher_suites"] = suites
    versions = _versions(args)
    if versions is not None:
        opts["supported_versions"] = versions
    initial = _initial_version(args, versions)
    if initial is not None:
        opts["initial_version"] = initial
    from .quic.recovery.congestion.base import CONGESTION_CONTROLLERS

    if args.congestion not in CONGESTION_CONTROLLERS:
        raise CliError(f"unknown congestion controller {args.congestion!r} "
                       f"(choose from {', '.join(sorted(CONGESTION_CONTROLLERS))})")
    if not 2 <= args.ack_every <= 256:
        raise CliError("--ack-every must be between 2 and 256")
    if not 1200 <= args.max_datagram_size <= 65527:
        raise CliError("--max-datagram-size must be between 1200 and 65527")
    return opts


def _preferred_address(args: argparse.Namespace, reality: bool) -> tuple[str, int] | None:
    """``--preferred-address``: an IP literal and a port other than 0 (it goes on the wire)."""
    if not args.preferred_address:
        return None
    if reality:
        raise CliError("--preferred-address cannot be used with --reality-config")
    import ipaddress

    from .aio.udp import parse_hostport

    try:
        host, port = parse_hostport(args.preferred_address, what="--preferred-address")
        ipaddress.ip_address(host)
    except ValueError as exc:
        raise CliError(f"{exc} (an IP address literal is required)") from None
    if port == 0:
        raise CliError("--preferred-address needs a port other than 0")
    return host, port


def _versions(args: argparse.Namespace) -> tuple[int, ...] | None:
    """``--versions`` checked; None for a subcommand without it (relay-client: the default)."""
    from .quic.packet import SUPPORTED_VERSIONS, is_reserved_version
    from .quic.versions import parse_versions

    if getattr(args, "versions", None) is None:
        return None
    try:
        versions = parse_versions(args.versions)
    except ValueError as exc:
        raise CliError(f"--versions: {exc}") from None
    # A client may list reserved versions 0x?a?a?a?a (sent in v1's format) to provoke Version
    # Negotiation (RFC 9000 §6.3); it must also list one it speaks.
    reserved_ok = args.command == "client"
    unknown = [v for v in versions if v not in SUPPORTED_VERSIONS
               and not (reserved_ok and is_reserved_version(v))]
    if unknown:
        raise CliError(f"--versions: we speak only v1 and v2, not {unknown[0]:#010x}"
                       + (" (a client may add reserved versions 0x?a?a?a?a)"
                          if reserved_ok else ""))
    if not any(v in SUPPORTED_VERSIONS for v in versions):
        raise CliError("--versions: list v1 or v2 too (a reserved version cannot connect)")
    return versions


def _initial_version(args: argparse.Namespace, versions: tuple[int, ...] | None) -> int | None:
    """``--initial-version`` checked against ``--versions``; None when not given."""
    from .quic.versions import parse_versions

    text = getattr(args, "initial_version", None)
    if text is None:
        return None
    try:
        parsed = parse_versions(text)
    except ValueError as exc:
        raise CliError(f"--initial-version: {exc}") from None
    if len(parsed) != 1:
        raise CliError("--initial-version: give one version")
    initial = parsed[0]
    if initial not in (versions or ()):
        raise CliError(f"--initial-version: {text} is not one of --versions")
    return initial


def run_server(args: argparse.Namespace) -> int:
    """``server`` subcommand."""
    from .aio.driver import apply_observability, edge_configuration
    from .aio.server import serve
    from .aio.udp import open_udp_socket, parse_hostport
    from .tls.certificates import FileCertificateSource

    try:
        host, port = parse_hostport(args.listen, what="--listen address")
    except ValueError as exc:
        raise CliError(str(exc)) from None
    from .aio import reality_cli

    reality = reality_cli.load_server_config(args.reality_config, CliError)
    if args.max_handshakes < 1:
        raise CliError("--max-handshakes must be at least 1")
    if reality is not None and args.retry:
        raise CliError("--retry cannot be used with --reality-config (a REALITY listener never "
                       "answers an unauthenticated client itself)")
    certs = None
    if reality is None and (not args.cert or not args.key):
        raise CliError("--cert and --key are required (or --reality-config)")
    if reality is None:
        for opt, path in (("--cert", args.cert), ("--key", args.key)):
            if not os.path.isfile(path) or not os.access(path, os.R_OK):
                raise CliError(f"{opt} {path!r}: no such readable file")
        try:
            certs = FileCertificateSource(args.cert, args.key)
        except Exception as exc:  # noqa: BLE001 - any parse failure is a user error here
            raise CliError(f"cannot load certificate/key: {exc}") from None
    www = None
    if args.www:
        www = Path(args.www)
        if not www.is_dir() or not os.access(www, os.R_OK | os.X_OK):
            raise CliError(f"--www {args.www!r}: not a readable directory")
    opts = _transport_options(args)
    preferred = _preferred_address(args, reality is not None)
    if preferred is not None:
        opts["preferred_address"] = preferred
    from .aio.relay_cli import load_server_relay_config

    # [relay] comes from --relay-config, else from the --reality-config file if it has the table.
    relay = load_server_relay_config(args.relay_config or args.reality_config, CliError,
                                     table_required=not args.relay_config, listen=(host, port),
                                     own_public_key=reality.public_key if reality else None)
    if relay is not None:
        opts.update(relay.quic_overrides())
    if reality is None:  # session tickets, resumption and 0-RTT (a REALITY listener issues none)
        from .tls.resumption import ServerTicketStore

        opts["ticket_store"] = ServerTicketStore(os.urandom(32))
    probe = edge_configuration(is_client=False, certificate_source=certs, **opts)
    try:  # a server writes secrets only when its command line asks (never from SSLKEYLOGFILE)
        closers = apply_observability(probe, qlog_dir=args.qlog_dir, keylog=args.keylog,
                                      qlog_flavour=args.qlog_flavour)
    except OSError as exc:
        raise CliError(f"--keylog {exc.filename!r}: {exc.strerror or exc}") from None
    metrics_http = None
    if args.metrics_listen:
        from .metrics import serve_metrics

        try:
            mhost, mport = parse_hostport(args.metrics_listen, what="--metrics-listen address")
            metrics_http = serve_metrics(mhost, mport)
            closers.append(metrics_http.shutdown)
        except (ValueError, OSError) as exc:
            raise CliError(f"--metrics-listen: {exc}") from None

    def factory() -> QuicConfiguration:
        return probe.derived()

    try:
        sock = open_udp_socket(host, port, dont_fragment=True)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from None
    preferred_sock = None
    if preferred is not None:
        try:
            preferred_sock = open_udp_socket(*preferred)
        except OSError as exc:
            sock.close()
            raise CliError(f"cannot listen on --preferred-address {args.preferred_address}: "
                           f"{exc.strerror or exc}") from None
    endpoint_qlog = None
    if reality is not None:
        from .aio.reality_server import endpoint_qlog_sink, resolve_target, serve_reality

        try:
            resolve_target(*reality.target)
        except OSError as exc:
            raise CliError(f"--reality-config: [reality] target {reality.target[0]!r}: "
                           f"{exc.strerror or exc}") from None
        qlog_dir = args.qlog_dir or os.environ.get("QLOGDIR")
        if qlog_dir:
            endpoint_qlog = endpoint_qlog_sink(qlog_dir, args.qlog_flavour)
    what = "HTTP/3, REALITY" if reality is not None else "HTTP/3"
    print(f"listening on {host}:{sock.getsockname()[1]} ({what})", flush=True)
    if preferred is not None:
        print(f"preferred address {preferred[0]}:{preferred[1]}", flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if reality is not None:  # SIGHUP reloads [reality] and [relay]
            on_hup = reality_cli.reload_on_sighup(args, (host, port), CliError)
            listen = f"{host}:{sock.getsockname()[1]}"

            def ready(server: Any) -> None:
                on_hup(server)
                if metrics_http is not None:  # the status page at / next to /metrics
                    from .aio.status_page import status_source

                    metrics_http.status = status_source(server, listen)

            await serve_reality(sock, factory, reality, www=www, stop=stop,
                                endpoint_qlog=endpoint_qlog, relay=relay, ready=ready)
            return
        await serve(sock, factory, www=www, retry=args.retry, stop=stop, relay=relay,
                    preferred_sock=preferred_sock, max_handshakes=args.max_handshakes)

    try:
        asyncio.run(main())
    finally:
        sock.close()
        if preferred_sock is not None:
            preferred_sock.close()
        for close in closers:
            close()
    return 0


def run_client(args: argparse.Namespace) -> int:
    """``client`` subcommand: prints one line per URL and exits 1 if any failed."""
    from .aio.client import fetch_all, split_url
    from .aio.driver import apply_observability, edge_configuration
    from .tls.certificates import InsecureVerifier, PkiVerifier

    for url in args.urls:
        try:
            split_url(url)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    out_dir = None
    if args.output_dir:
        out_dir = Path(args.output_dir)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CliError(f"-o {args.output_dir!r}: {exc.strerror}") from None
        if not os.access(out_dir, os.W_OK):
            raise CliError(f"-o {args.output_dir!r}: not writable")
    import time

    from .aio import reality_cli

    reality = reality_cli.client_configurator(args, CliError)
    shape_hello = reality or reality_cli.plain_configurator(args, CliError)
    if reality is None and not args.insecure and not args.ca:
        raise CliError("choose --insecure or --ca FILE (system trust stores are not used)")
    if args.ca:
        if not os.path.isfile(args.ca):
            raise CliError(f"--ca {args.ca!r}: no such file")
        try:
            PkiVerifier(args.ca, wall_clock=time.time)
        except Exception as exc:  # noqa: BLE001
            raise CliError(f"cannot load CA file {args.ca!r}: {exc}") from None

    def make_verifier(host: str) -> object:
        if args.insecure or reality is not None:
            return InsecureVerifier()  # REALITY replaces it with its own HMAC check
        return PkiVerifier(args.ca, wall_clock=time.time, name=args.server_name or host)
    opts = _transport_options(args)
    closers: list = []
    from .aio.client import ClientOptions
    from .aio.tickets import load_ticket, ticket_saver

    if args.zero_rtt and not args.session_ticket:
        raise CliError("--0rtt needs --session-ticket FILE")
    try:
        ticket = load_ticket(args.session_ticket) if args.session_ticket else None
    except ValueError as exc:
        raise CliError(f"--session-ticket {args.session_ticket!r}: {exc}") from None
    options = ClientOptions(on_ticket=ticket_saver(args.session_ticket) if args.session_ticket
                            else None, early_data=args.zero_rtt, key_update=args.key_update)

    def make_config(host: str) -> QuicConfiguration:
        cfg = edge_configuration(is_client=True, peer_verifier=make_verifier(host),
                                 server_name=args.server_name, session_ticket=ticket,
                                 early_data=args.zero_rtt, **opts)
        cfg = shape_hello(cfg)
        if args.initial_layout is not None:
            cfg = cfg.derived(initial_layout=args.initial_layout)
        try:  # clients honour SSLKEYLOGFILE (the curl convention)
            closers.extend(apply_observability(cfg, qlog_dir=args.qlog_dir, keylog=args.keylog,
                                               qlog_flavour=args.qlog_flavour, keylog_from_env=True))
        except OSError as exc:
            raise CliError(f"key log {exc.filename!r}: {exc.strerror or exc}") from None
        return cfg

    batches = [[u] for u in args.urls] if args.connection_per_url else [list(args.urls)]
    results = []
    try:
        for batch in batches:
            got = asyncio.run(fetch_all(batch, make_config, out_dir=out_dir,
                                        timeout=args.timeout, options=options,
                                        migrate=args.migrate))
            results.extend(got)
            if not all(d.ok for d in got):
                break  # as separate processes run by `set -e` would
    finally:
        for close in closers:
            close()
    failed = 0
    for d in results:
        if args.json:
            import json

            failed += 0 if d.ok else 1
            print(json.dumps({"url": d.url, "status": d.status, "bytes": d.bytes,
                              "secs": round(d.seconds, 6), "mbps": round(d.mbps, 3),
                              "file": str(d.output) if d.output else None,
                              "early_data": d.early_data,
                              "error": None if d.ok else (d.error or f"HTTP status {d.status}")}),
                  flush=True)
            continue
        if d.ok:
            print(f"{d.url} {d.bytes} bytes {d.seconds:.3f} s {d.mbps:.2f} Mbit/s", flush=True)
        else:
            failed += 1
            reason = d.error or f"HTTP status {d.status}"
            print(f"{d.url} FAILED: {reason}", flush=True)
    if failed:
        print(f"error: {failed} of {len(results)} downloads failed", file=sys.stderr)
        return 1
    return 0


def run_keygen(args: argparse.Namespace) -> int:
    """``keygen`` subcommand (:mod:`quicreality.aio.reality_cli`)."""
    from .aio.reality_cli import run_keygen as run

    return run(args, CliError)


def run_relay_client(args: argparse.Namespace) -> int:
    """``relay-client`` subcommand (:mod:`quicreality.aio.relay_cli`)."""
    from .aio.relay_cli import run_relay_client as run

    return run(args, CliError, _transport_options)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    handlers = {"server": run_server, "client": run_client, "relay-client": run_relay_client,
                "keygen": run_keygen}
    try:
        return handlers[args.command](args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
