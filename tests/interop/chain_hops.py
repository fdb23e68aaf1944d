"""Test harness for relay chains: RAW -> QUIC_REALITY -> QUIC_REALITY ... -> RAW on loopback.

:class:`Hop` is one REALITY relay server process whose ``[relay]`` table may name an upstream
(the next hop). :func:`build_chain` starts the hops from the last (next to the destination) to
the first, then a relay client in front of the first. Every hop has its own keys, short ID,
config file and metrics port.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

from peers_harness import PeerHarness, Pki
from relay_chain import (
    HOST,
    Fwd,
    RealitySetup,
    RelayChain,
    free_tcp_port,
    make_reality_setup,
    wait_for,
)

from quicreality.scenarios.peers.base import free_udp_port


class Hop(RelayChain):
    """One relay server of a chain (plus, for the first hop, the relay client in front of it)."""

    def __init__(self, harness: PeerHarness, pki: Pki, name: str, forwards: list[Fwd],
                 allow: list[str], reality: RealitySetup, *, upstream: Hop | None = None,
                 extra_relay: tuple[str, ...] = (), extra_short_ids: tuple[str, ...] = (),
                 extra_server_names: tuple[str, ...] = ()) -> None:
        super().__init__(harness, pki, forwards, allow, reality=reality)
        self.name = name
        self.label = name
        self.upstream = upstream
        self.extra_relay = extra_relay
        self.extra_short_ids = extra_short_ids
        self.extra_server_names = extra_server_names
        self.config_path = harness.path(f"{name}.toml")

    def config_text(self) -> str:
        """The hop's TOML: ``[reality]``, ``[relay]`` and maybe ``[relay.upstream]``."""
        r = self.reality
        assert r is not None
        short_ids = ", ".join(f'"{s}"' for s in (r.short_id, *self.extra_short_ids))
        names = ", ".join(f'"{n}"' for n in (r.server_name, *self.extra_server_names))
        allow = ", ".join(f'"{a}"' for a in self.allow)
        lines = ["[reality]", f'private_key = "{r.private_key}"',
                 f"server_names = [{names}]", f"short_ids = [{short_ids}]",
                 f'target = "{r.target}"', 'min_client_ver = "0.0.0"', "",
                 "[relay]", f"allow = [{allow}]", "connect_timeout_ms = 5000",
                 *self.extra_relay, ""]
        up = self.upstream
        if up is not None:
            u = up.reality
            assert u is not None
            lines += ["[relay.upstream]", f'server = "{HOST}:{up.server_port}"',
                      f'public_key = "{u.public_key}"', f'short_id = "{u.short_id}"',
                      f'server_name = "{u.server_name}"', ""]
        return "\n".join(lines)

    def write_config(self) -> None:
        """Write :meth:`config_text`."""
        self.config_path.write_text(self.config_text())


def new_hop(harness: PeerHarness, pki: Pki, name: str, forwards: list[Fwd], allow: list[str],
            *, upstream: Hop | None = None) -> Hop:
    """A hop with fresh keys; its fallback target is an unused loopback UDP port."""
    return Hop(harness, pki, name, forwards, allow, make_reality_setup(free_udp_port()),
               upstream=upstream)


def build_chain(harness: PeerHarness, pki: Pki, hops: int, forwards: list[Fwd],
                allow: list[str], prefix: str = "hop") -> list[Hop]:
    """Start ``hops`` relay servers chained to each other and a relay client in front of the
    first; returns them first hop first (``result[0].listen`` has the client's ports)."""
    chain: list[Hop] = []
    upstream: Hop | None = None
    for i in reversed(range(hops)):
        hop = new_hop(harness, pki, f"{prefix}{i + 1}", forwards, allow, upstream=upstream)
        hop.server_metrics = free_tcp_port()
        hop.start_server()
        chain.insert(0, hop)
        upstream = hop
    chain[0].start_client()
    return chain


def describe(chain: list[Hop]) -> str:
    """Every process's log tail."""
    return "\n".join(h.describe() for h in chain)


def config_path(hop: Hop) -> Path:
    """The hop's config file."""
    return hop.config_path


def client_of(hop: Hop, name: str, *, short_id: str | None = None,
              server_name: str | None = None) -> Hop:
    """Another relay client of ``hop``'s server (same forwards and key), authenticating with
    ``short_id`` / ``server_name`` instead of the hop's own (start it with ``start_client``)."""
    r = hop.reality
    assert r is not None
    creds = dataclasses.replace(r, short_id=short_id or r.short_id,
                                server_name=server_name or r.server_name)
    other = Hop(hop.harness, hop.pki, name, hop.forwards, hop.allow, creds)
    other.server_port = hop.server_port
    return other


def reload(hop: Hop, timeout: float = 20.0) -> str:
    """Write the hop's config file, SIGHUP its server and wait for its answer: the
    ``reloaded ...`` line (stdout) or the ``reload refused: ...`` line (stderr)."""
    server = hop.server
    assert server is not None
    hop.write_config()

    def answers() -> list[str]:
        return [line for line in (server.stdout() + server.stderr()).splitlines()
                if line.startswith(("reloaded ", "reload refused: "))]

    before = len(answers())
    os.kill(server.pid, signal.SIGHUP)
    wait_for(lambda: len(answers()) > before or not server.running(), timeout,
             f"{hop.name} to answer SIGHUP")
    assert server.running(), server.describe()
    return answers()[before]
