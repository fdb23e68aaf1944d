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
from collections.abc import Callable
from typing import Any

from ..reality.config import RealityConfigError, RealityServerConfig, parse_reality_toml
from ..reality.keys import (
    KeyFormatError,
    generate_key_pair,
    generate_short_id,
    key_pair_from_private,
    parse_private_key,
)
from .hello_cli import ErrorType as ErrorType
from .hello_cli import add_hello_options as add_hello_options
from .hello_cli import client_configurator as client_configurator
from .hello_cli import plain_configurator as plain_configurator


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
