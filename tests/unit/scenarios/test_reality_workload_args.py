"""The runner's REALITY client options survive a public key that starts with "-".

A base64url key begins with "-" for one key in 64; given as a separate argv item argparse takes it
for an option ("expected one argument"), which failed lossy-wan's reality-h3 row at random.
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace
from typing import Any, cast

from quicreality.aio.reality_cli import add_client_options
from quicreality.reality.keys import b64url_encode
from quicreality.scenarios.workloads.reality import SERVER_NAME, reality_client_args


def test_a_key_starting_with_a_dash_parses() -> None:
    key = b64url_encode(bytes([0xF8]) + bytes(31))
    assert key.startswith("-")
    ctx = SimpleNamespace(assets=SimpleNamespace(reality={"private_key": "x", "public_key": key,
                                                            "short_id": "0a0b0c0d"}))
    argv = reality_client_args(cast(Any, ctx))
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_client_options(parser)
    args, rest = parser.parse_known_args(argv)
    assert args.reality_public_key == key
    assert args.short_id == "0a0b0c0d"
    assert rest == ["--server-name", SERVER_NAME] or getattr(args, "server_name", None) == SERVER_NAME
