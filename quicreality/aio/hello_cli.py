"""The client hello options shared by ``client`` and ``relay-client`` (argv contract):
``--fingerprint``, ``--carrier`` and ``--reality-version``, and the functions that turn them and
``--reality-public-key``/``--short-id`` into a configuration step.

One module for both commands, so the two cannot drift apart (the relay client once had its own,
flag-less copy); :mod:`.reality_cli` and :mod:`.relay_cli` both import it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from ..quic.fingerprint import FINGERPRINTS
from ..reality.keys import KeyFormatError, parse_public_key, parse_short_id, parse_version
from ..reality.seal import DEFAULT_CLIENT_VERSION, DEFAULT_FINGERPRINT, reality_client_configuration

ErrorType = Callable[[str], Exception]


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
