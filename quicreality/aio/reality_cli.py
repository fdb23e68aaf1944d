"""REALITY parts of the command line (:mod:`quicreality.cli` calls these).

* ``python -m quicreality keygen [--json] [-i PRIVATE_KEY]``: an X25519 key pair in Xray's encoding
  (base64 RawURL, no padding) and a random short ID; ``-i`` derives the public key of an existing
  private key (``xray x25519 -i``).
* ``server --reality-config FILE``: the ``[reality]`` table of a TOML file.
* ``client --reality-public-key KEY --short-id HEX [--reality-version X.Y.Z] --server-name SNI
  [--fingerprint chrome|minimal] [--carrier ech|session_id]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

from ..quic.fingerprint import FINGERPRINTS
from ..reality.config import RealityConfigError, RealityServerConfig, parse_reality_toml
from ..reality.keys import (
    KeyFormatError,
    generate_key_pair,
    generate_short_id,
    key_pair_from_private,
    parse_private_key,
    parse_public_key,
    parse_short_id,
    parse_version,
)
from ..reality.seal import (
    DEFAULT_CLIENT_VERSION,
    DEFAULT_FINGERPRINT,
    reality_client_configuration,
)

ErrorType = Callable[[str], Exception]


def add_keygen_parser(sub: Any) -> None:
    """The ``keygen`` subcommand."""
    k = sub.add_parser("keygen", help="make a REALITY X25519 key pair and a short ID")
    k.add_argument("--json", action="store_true", help="print one JSON object")
    k.add_argument("-i", "--private-key", metavar="KEY",
                   help="derive the public key of this private key (base64url, as xray x25519)")


def add_server_options(p: argparse.ArgumentParser) -> None:
    """``server --reality-config``."""
    p.add_argument("--reality-config", metavar="FILE",
                   help="TOML whose [reality] table makes this a REALITY listener "
                        "(--cert/--key are then not needed)")


def add_client_options(p: argparse.ArgumentParser) -> None:
    """``client --reality-public-key/--short-id`` and the hello options
    (:func:`add_hello_options`)."""
    p.add_argument("--reality-public-key", metavar="KEY",
                   help="connect with REALITY to a server with this X25519 public key (base64url)")
    p.add_argument("--short-id", metavar="HEX", default="",
                   help="REALITY short ID (hex, up to 16 characters; default: empty)")
    add_hello_options(p)


def add_hello_options(p: argparse.ArgumentParser) -> None:
    """``--fingerprint/--carrier/--reality-version``: what a client's hello looks like and
    carries (``client`` and ``relay-client``; :func:`client_configurator` reads them)."""
    p.add_argument("--fingerprint", choices=list(FINGERPRINTS), default=None,
                   help="what the first flight looks like: chrome (Chromium 156's hello and "
                        "transport parameters) or minimal (our own); default: chrome with "
                        "--reality-public-key, else minimal")
    p.add_argument("--reality-version", metavar="X.Y.Z",
                   default=".".join(map(str, DEFAULT_CLIENT_VERSION)),
                   help="client version sealed into the token (default: %(default)s)")
    p.add_argument("--carrier", choices=["ech", "session_id"], default=None,
                   help="where the REALITY token travels: ech (the GREASE ECH payload of the "
                        "chrome hello) or session_id (Xray's); default: ech with "
                        "--fingerprint chrome, session_id with minimal")


def plain_configurator(args: argparse.Namespace, error: ErrorType) -> Callable[[Any], Any]:
    """The non-REALITY counterpart of :func:`client_configurator`: the ``--fingerprint``
    (default minimal); ``--carrier`` has nothing to carry without REALITY."""
    if getattr(args, "carrier", None) is not None:
        raise error("--carrier needs --reality-public-key (only a REALITY hello carries a token)")
    from ..quic.fingerprint import apply_fingerprint

    fingerprint = getattr(args, "fingerprint", None) or "minimal"
    return lambda base: apply_fingerprint(base, fingerprint)


def run_keygen(args: argparse.Namespace, error: ErrorType) -> int:
    """Print a key pair (new, or from ``-i``) and a fresh short ID."""
    if args.private_key:
        try:
            pair = key_pair_from_private(parse_private_key(args.private_key))
        except KeyFormatError as exc:
            raise error(f"--private-key: {exc}") from None
    else:
        pair = generate_key_pair(os.urandom)
    short_id = generate_short_id(os.urandom)
    if args.json:
        print(json.dumps({"private_key": pair.private_key_text, "public_key": pair.public_key_text,
                          "short_id": short_id}))
    else:
        print(f"PrivateKey: {pair.private_key_text}")
        print(f"PublicKey: {pair.public_key_text}")
        print(f"ShortId: {short_id}")
    return 0


def load_server_config(path: str | None, error: ErrorType) -> RealityServerConfig | None:
    """The validated ``[reality]`` table of ``path`` (None without a path); errors name the field."""
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise error(f"--reality-config {path!r}: {exc.strerror or exc}") from None
    try:
        return parse_reality_toml(text)
    except RealityConfigError as exc:
        raise error(f"--reality-config {path}: {exc}") from None


def client_configurator(args: argparse.Namespace, error: ErrorType) -> Callable[[Any], Any] | None:
    """If ``--reality-public-key`` is set: a function turning a base client configuration into a
    REALITY one (a fresh hook per connection); else None."""
    if not args.reality_public_key:
        return None
    if args.insecure or args.ca:
        raise error("--reality-public-key verifies the server itself: drop --insecure/--ca")
    try:
        public_key = parse_public_key(args.reality_public_key)
    except KeyFormatError as exc:
        raise error(f"--reality-public-key: {exc}") from None
    try:
        short_id = parse_short_id(args.short_id)
    except KeyFormatError as exc:
        raise error(f"--short-id: {exc}") from None
    try:
        version = parse_version(args.reality_version)
    except KeyFormatError as exc:
        raise error(f"--reality-version: {exc}") from None
    fingerprint = getattr(args, "fingerprint", None) or DEFAULT_FINGERPRINT
    carrier = getattr(args, "carrier", None)
    if carrier == "ech" and fingerprint != "chrome":
        raise error("--carrier ech needs --fingerprint chrome (the minimal hello has no ECH "
                    "extension to carry the token)")

    def configure(base: Any) -> Any:
        return reality_client_configuration(
            base, server_public_key=public_key, short_id=short_id,
            server_name=args.server_name or base.server_name, version=version,
            wall_clock=time.time, fingerprint=fingerprint, carrier=carrier)

    return configure


def load_listener_configs(args: argparse.Namespace, listen: tuple[str, int],
                          error: ErrorType) -> tuple[RealityServerConfig | None, Any]:
    """The ``[reality]`` and ``[relay]`` tables as ``server`` loads them (also on a reload):
    ``(reality config or None, relay config or None)``; ``error`` for the first problem."""
    from .relay_cli import load_server_relay_config

    reality = load_server_config(args.reality_config, error)
    relay = load_server_relay_config(args.relay_config or args.reality_config, error,
                                     table_required=not args.relay_config, listen=listen,
                                     own_public_key=reality.public_key if reality else None)
    return reality, relay


def reload_on_sighup(args: argparse.Namespace, listen: tuple[str, int],
                     error: ErrorType) -> Callable[[Any], None]:
    """A ``ready`` callback for :func:`~quicreality.aio.reality_server.serve_reality`: SIGHUP
    re-reads the files and swaps them in (:meth:`RealityServer.reload`); a file that does not
    validate is refused with one ``reload refused:`` line and the old configuration stays."""
    import asyncio
    import signal
    import sys

    def install(server: Any) -> None:
        def on_hup() -> None:
            try:
                reality, relay = load_listener_configs(args, listen, error)
            except Exception as exc:  # noqa: BLE001 - any failure keeps the old config
                print(f"reload refused: {exc}; the old configuration stays in force",
                      file=sys.stderr, flush=True)
                server.reload_failures += 1
                return
            if reality is None:
                print("reload refused: no [reality] table; the old configuration stays in force",
                      file=sys.stderr, flush=True)
                server.reload_failures += 1
                return
            plan = server.reload(reality, relay)
            print(f"reloaded {args.reality_config}: {plan.describe()}", flush=True)

        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_hup)
    return install
