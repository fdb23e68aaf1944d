"""``python -m quicreality relay-client ...`` and the server's ``[relay]`` options (argv contract).

Kept out of :mod:`quicreality.cli` so the relay's options live in one place; ``cli.py`` only adds
the subcommand and the two server options (``--relay-config``, ``--metrics-listen``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..quic.config import QuicConfiguration
from ..relay.config import (
    RelayConfig,
    RelayConfigError,
    check_upstream_loop,
    parse_relay_toml,
    parse_size,
)
from ..relay.protocol import Kind, parse_destination

if TYPE_CHECKING:
    from ..tls.certificates import PeerVerifier
    from .relay_client import Forward


class Subcommands(Protocol):
    """The part of argparse's subparsers object that adds a subcommand."""

    def add_parser(self, name: str, *, help: str | None = ...,
                   description: str | None = ...) -> argparse.ArgumentParser:
        """Add a subcommand and return its parser."""
        ...


class _Ordered(argparse.Action):
    """Appends ``(option, value)`` to one shared list, keeping the order of the pairs."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[object] | None,
                 option_string: str | None = None) -> None:
        items = list(getattr(namespace, "pairs", None) or [])
        items.append((option_string, values))
        namespace.pairs = items


def add_relay_client_parser(sub: Subcommands,
                            add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the ``relay-client`` subcommand to ``sub`` (an argparse subparsers object)."""
    r = sub.add_parser(
        "relay-client", help="relay local TCP/UDP over one QUIC (REALITY) connection",
        description="Listen locally; carry every accepted TCP connection on a new stream and every "
                    "UDP flow in DATAGRAM frames of one pooled QUIC connection to the relay "
                    "server, which connects to the destination (RAW -> QUIC_REALITY -> RAW).")
    r.add_argument("--server", required=True, metavar="HOST:PORT", help="the relay server (UDP)")
    r.add_argument("--reality-public-key", metavar="KEY",
                   help="the server's REALITY X25519 public key (base64url, as xray x25519 prints)")
    r.add_argument("--short-id", metavar="HEX", help="REALITY short ID (with --reality-public-key)")
    r.add_argument("--server-name", metavar="SNI", help="SNI to send (REALITY: one of the server's names)")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--insecure", action="store_true",
                   help="plain TLS without certificate verification (no REALITY)")
    g.add_argument("--ca", help="plain TLS, verifying the server against this PEM CA (no REALITY)")
    from .hello_cli import add_hello_options

    add_hello_options(r)
    r.add_argument("--tcp-listen", action=_Ordered, metavar="HOST:PORT", dest="pairs",
                   help="accept TCP here (repeatable; each followed by --forward)")
    r.add_argument("--udp-listen", action=_Ordered, metavar="HOST:PORT", dest="pairs",
                   help="receive UDP here (repeatable; each followed by --forward)")
    r.add_argument("--forward", action=_Ordered, metavar="DEST_HOST:DEST_PORT", dest="pairs",
                   help="destination of the preceding --tcp-listen/--udp-listen")
    r.add_argument("--idle-timeout", type=float, default=30.0,
                   help="QUIC idle timeout in seconds; the client PINGs every third of it (default 30)")
    r.add_argument("--handshake-timeout", type=float, default=5.0,
                   help="give a connection attempt up after this many seconds (default 5)")
    r.add_argument("--stream-window", default="2M", help="QUIC receive window per stream (default 2M)")
    r.add_argument("--connection-window", default="16M",
                   help="QUIC receive window per connection (default 16M)")
    r.add_argument("--high-water", default="1M",
                   help="per stream: stop reading a socket while this much is unacknowledged, "
                        "stop taking stream data while the socket buffers this much (default 1M)")
    r.add_argument("--udp-idle-timeout", type=float, default=60.0,
                   help="close a UDP flow after this many idle seconds (default 60)")
    r.add_argument("--metrics-listen", metavar="HOST:PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics")
    add_common(r)


def _forwards(args: argparse.Namespace, error: Callable[[str], Exception]) -> list[Forward]:
    from .relay_client import Forward
    from .udp import parse_hostport

    out = []
    pending: tuple[str, str] | None = None
    for option, value in getattr(args, "pairs", None) or []:
        if option in ("--tcp-listen", "--udp-listen"):
            if pending is not None:
                raise error(f"{pending[0]} {pending[1]} needs a --forward before {option}")
            pending = (option, value)
            continue
        if pending is None:
            raise error(f"--forward {value} must follow a --tcp-listen or --udp-listen")
        try:
            listen = parse_hostport(pending[1], what=f"{pending[0]} address")
            dest = parse_destination(value)
        except ValueError as exc:
            raise error(str(exc)) from None
        kind = Kind.TCP if pending[0] == "--tcp-listen" else Kind.UDP
        out.append(Forward(kind, listen, dest))
        pending = None
    if pending is not None:
        raise error(f"{pending[0]} {pending[1]} needs a --forward")
    if not out:
        raise error("give at least one --tcp-listen or --udp-listen with its --forward")
    return out


def relay_config_from_args(args: argparse.Namespace, error: Callable[[str], Exception]) -> RelayConfig:
    """The client's windows and limits from the command line."""
    try:
        high = parse_size(args.high_water)
        config = RelayConfig(
            stream_window=parse_size(args.stream_window),
            connection_window=parse_size(args.connection_window),
            send_high_water=high, send_low_water=max(1, high // 4),
            write_high_water=high, write_low_water=max(1, high // 4),
            udp_idle_timeout=args.udp_idle_timeout)
        config.check()
    except (ValueError, RelayConfigError) as exc:
        raise error(str(exc).replace("[relay] ", "--").replace("_", "-")) from None
    return config


def _client_config_factory(args: argparse.Namespace, opts: dict[str, object],
                           relay: RelayConfig,
                           error: Callable[[str], Exception]) -> Callable[[], QuicConfiguration]:
    from ..tls.certificates import InsecureVerifier, PkiVerifier
    from .driver import edge_configuration
    from .hello_cli import client_configurator, plain_configurator

    base = edge_configuration(is_client=True, idle_timeout=args.idle_timeout,
                              **relay.quic_overrides(), **opts)
    if args.reality_public_key or args.short_id is not None:
        if not args.reality_public_key or args.short_id is None or not args.server_name:
            raise error("REALITY needs --reality-public-key, --short-id and --server-name")
        configure = client_configurator(args, error)  # the client's: --fingerprint, --carrier
        assert configure is not None

        def reality() -> QuicConfiguration:
            cfg: QuicConfiguration = configure(base)
            return cfg
        return reality
    hello = plain_configurator(args, error)
    if not args.insecure and not args.ca:
        raise error("choose REALITY (--reality-public-key/--short-id/--server-name), "
                    "or plain TLS with --insecure or --ca FILE")
    if args.ca and not os.path.isfile(args.ca):
        raise error(f"--ca {args.ca!r}: no such file")
    host = args.server_host

    def plain() -> QuicConfiguration:
        verifier: PeerVerifier = (InsecureVerifier() if args.insecure else
                         PkiVerifier(args.ca, wall_clock=time.time, name=args.server_name or host))
        cfg: QuicConfiguration = hello(base.derived(peer_verifier=verifier,
                                                    server_name=args.server_name))
        return cfg
    return plain


def run_relay_client(args: argparse.Namespace, error: Callable[[str], Exception],
                     transport_options: Callable[[argparse.Namespace], dict[str, object]]) -> int:
    """``relay-client`` subcommand: runs until SIGINT/SIGTERM."""
    from ..metrics import serve_metrics
    from .driver import apply_observability
    from .relay_client import RelayClient
    from .udp import parse_hostport

    try:
        server = parse_hostport(args.server, what="--server address")
    except ValueError as exc:
        raise error(str(exc)) from None
    args.server_host = server[0]
    forwards = _forwards(args, error)
    relay = relay_config_from_args(args, error)
    opts = dict(transport_options(args))
    factory = _client_config_factory(args, opts, relay, error)
    closers: list[Callable[[], None]] = []

    def make_config() -> QuicConfiguration:
        cfg = factory()
        try:  # a client: honours SSLKEYLOGFILE (the curl convention)
            closers.extend(apply_observability(cfg, qlog_dir=args.qlog_dir, keylog=args.keylog,
                                               qlog_flavour=args.qlog_flavour, keylog_from_env=True))
        except OSError as exc:
            raise error(f"key log {exc.filename!r}: {exc.strerror or exc}") from None
        return cfg

    metrics_server = None
    if args.metrics_listen:
        try:
            mhost, mport = parse_hostport(args.metrics_listen, what="--metrics-listen address")
            metrics_server = serve_metrics(mhost, mport)
        except (ValueError, OSError) as exc:
            raise error(f"--metrics-listen: {exc}") from None
        print(f"relay-client: metrics on http://{mhost}:{mport}/metrics", flush=True)

    def status(line: str) -> None:
        print(f"relay-client: {line}", flush=True)

    async def main() -> None:
        client = RelayClient(server, make_config, forwards, relay,
                             handshake_timeout=args.handshake_timeout, on_status=status)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await client.start()
        except OSError as exc:
            raise error(f"cannot listen: {exc.strerror or exc}") from None
        try:
            await stop.wait()
        finally:
            await client.close()

    try:
        asyncio.run(main())
    finally:
        for close in closers:
            close()
        if metrics_server is not None:
            metrics_server.shutdown()
    return 0


def load_server_relay_config(path: str | None, error: Callable[[str], Exception], *,
                             table_required: bool = False, own_public_key: bytes | None = None,
                             listen: tuple[str, int] | None = None) -> RelayConfig | None:
    """The ``[relay]`` table of ``path``; None without a path, or without the table when
    ``table_required`` (the REALITY file may have no ``[relay]`` table: relay stays off).

    An upstream that is visibly this server (``own_public_key``, the ``listen`` address) is
    refused: the chain would loop."""
    if not path:
        return None
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise error(f"relay config {path!r}: {exc.strerror or exc}") from None
    if table_required:
        import tomllib

        try:
            if "relay" not in tomllib.loads(text):
                return None
        except tomllib.TOMLDecodeError:
            pass  # parse_relay_toml reports it
    try:
        config = parse_relay_toml(text)
        check_upstream_loop(config, own_public_key=own_public_key, listen=listen)
    except RelayConfigError as exc:
        raise error(f"{path}: {exc}") from None
    if config.allow.is_open:
        print(f"warning: {path}: [relay] allow contains a /0 network: this relay reaches any "
              "address", file=sys.stderr)
    return config
