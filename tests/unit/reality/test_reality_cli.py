"""The REALITY command line: keygen, config errors (exit 2, one line naming the field), client options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reality_helpers import SERVER_PRIVATE

from quicreality.cli import main
from quicreality.reality.keys import (
    b64url_encode,
    clamp_x25519,
    parse_private_key,
    parse_public_key,
    parse_short_id,
    x25519_public_key,
)


def test_keygen_json_prints_a_matching_xray_style_pair(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    private = parse_private_key(out["private_key"])
    assert private == clamp_x25519(private)
    assert parse_public_key(out["public_key"]) == x25519_public_key(private)
    assert len(out["private_key"]) == len(out["public_key"]) == 43  # RawURL, no padding
    assert len(parse_short_id(out["short_id"])) == 8


def test_keygen_text_and_from_an_existing_key(capsys: pytest.CaptureFixture[str]) -> None:
    text_key = b64url_encode(SERVER_PRIVATE)
    assert main(["keygen", "-i", text_key]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert parse_public_key(lines["PublicKey"]) == x25519_public_key(SERVER_PRIVATE)
    assert lines["PrivateKey"] == b64url_encode(clamp_x25519(SERVER_PRIVATE))
    assert main(["keygen", "-i", "not a key"]) == 2
    assert "--private-key" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ("[reality]\nserver_names=['a']\nshort_ids=['']\ntarget='127.0.0.1:1'\n", "private_key"),
        ((f"[reality]\nprivate_key='{b64url_encode(SERVER_PRIVATE)}'\nserver_names=['a']\n"
          "short_ids=['xyz']\ntarget='127.0.0.1:1'\n"), "short_ids"),
        ((f"[reality]\nprivate_key='{b64url_encode(SERVER_PRIVATE)}'\nserver_names=['a']\n"
          "short_ids=['']\ntarget='nowhere'\n"), "target"),
    ],
)
def test_server_with_an_invalid_reality_config_exits_2_naming_the_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, field: str) -> None:
    path = tmp_path / "reality.toml"
    path.write_text(toml)
    assert main(["server", "--listen", "127.0.0.1:0", "--reality-config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert f"[reality] {field}" in err[0]


def test_server_refuses_retry_with_reality(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "reality.toml"
    path.write_text(f"[reality]\nprivate_key='{b64url_encode(SERVER_PRIVATE)}'\n"
                    "server_names=['a']\nshort_ids=['']\ntarget='127.0.0.1:1'\n")
    assert main(["server", "--listen", "127.0.0.1:0", "--reality-config", str(path),
                 "--retry"]) == 2
    assert "--retry" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--reality-public-key", "abc"], "--reality-public-key"),
        (["--reality-public-key", b64url_encode(bytes(32)), "--short-id", "123"], "--short-id"),
        (["--reality-public-key", b64url_encode(bytes(32)), "--reality-version", "1.2"],
         "--reality-version"),
        (["--reality-public-key", b64url_encode(bytes(32)), "--insecure"], "drop --insecure"),
        (["--reality-public-key", b64url_encode(bytes(32)), "--fingerprint", "minimal",
          "--carrier", "ech"], "--carrier ech needs --fingerprint chrome"),
    ],
)
def test_client_reality_option_errors(capsys: pytest.CaptureFixture[str], extra: list[str],
                                      message: str) -> None:
    assert main(["client", "https://127.0.0.1:1/", *extra]) == 2
    assert message in capsys.readouterr().err


def test_client_fingerprint_and_carrier_choices_reach_the_configuration() -> None:
    import argparse

    from quicreality.aio.reality_cli import client_configurator
    from quicreality.quic.config import QuicConfiguration
    from quicreality.reality.token import Carrier

    def configured(**flags: object) -> QuicConfiguration:
        args = argparse.Namespace(reality_public_key=b64url_encode(bytes(range(32))),
                                  short_id="0a0b", reality_version="26.3.27", insecure=False,
                                  ca=None, server_name="localhost", fingerprint=None,
                                  carrier=None)
        for k, v in flags.items():
            setattr(args, k, v)
        configure = client_configurator(args, ValueError)
        assert configure is not None
        return configure(QuicConfiguration(is_client=True, wall_clock=lambda: 0.0))

    default = configured()
    assert default.fingerprint == "chrome" and default.peer_verifier.carrier is Carrier.ECH
    xray = configured(fingerprint="minimal")
    assert xray.fingerprint == "minimal" and xray.peer_verifier.carrier is Carrier.SESSION_ID
    assert xray.legacy_session_id_length == 32
    both = configured(carrier="session_id")
    assert both.fingerprint == "chrome" and both.peer_verifier.carrier is Carrier.SESSION_ID


def _relay_client_config(*extra: str) -> object:
    """The configuration ``relay-client`` builds from its argv (no sockets opened)."""
    from quicreality.aio.relay_cli import _client_config_factory, relay_config_from_args
    from quicreality.cli import CliError, build_parser

    args = build_parser().parse_args(["relay-client", "--server", "127.0.0.1:4433",
                                      "--tcp-listen", "127.0.0.1:0", "--forward",
                                      "127.0.0.1:9", *extra])
    args.server_host = "127.0.0.1"
    factory = _client_config_factory(args, {}, relay_config_from_args(args, CliError), CliError)
    return factory()


REALITY_RELAY = ("--reality-public-key", b64url_encode(bytes(range(32))), "--short-id", "0a0b",
                 "--server-name", "localhost")


@pytest.mark.parametrize(
    ("extra", "fingerprint", "carrier", "session_id_len"),
    [
        ((), "chrome", "ech", 0),
        (("--carrier", "session_id"), "chrome", "session_id", 32),
        (("--fingerprint", "minimal"), "minimal", "session_id", 32),
    ],
)
def test_relay_client_takes_the_clients_fingerprint_and_carrier(
        extra: tuple[str, ...], fingerprint: str, carrier: str, session_id_len: int) -> None:
    cfg = _relay_client_config(*REALITY_RELAY, *extra)
    assert cfg.fingerprint == fingerprint  # type: ignore[attr-defined]
    assert cfg.peer_verifier.carrier.value == carrier  # type: ignore[attr-defined]
    assert cfg.legacy_session_id_length == session_id_len  # type: ignore[attr-defined]


def test_relay_client_plain_tls_with_a_chrome_hello() -> None:
    cfg = _relay_client_config("--insecure", "--fingerprint", "chrome")
    assert cfg.fingerprint == "chrome" and cfg.initial_layout == "chrome"  # type: ignore[attr-defined]
    assert _relay_client_config("--insecure").fingerprint == "minimal"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*REALITY_RELAY, "--fingerprint", "minimal", "--carrier", "ech"],
         "--carrier ech needs --fingerprint chrome"),
        (["--insecure", "--carrier", "ech"], "--carrier needs --reality-public-key"),
        ([*REALITY_RELAY, "--reality-version", "1.2"], "--reality-version"),
    ],
)
def test_relay_client_hello_option_errors(argv: list[str], message: str) -> None:
    from quicreality.cli import CliError

    with pytest.raises(CliError, match=message):
        _relay_client_config(*argv)
