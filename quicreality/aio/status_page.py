"""The status page of a running REALITY listener (the edge side of :mod:`quicreality.status`).

:func:`build_status` reads a :class:`~quicreality.aio.reality_server.RealityServer` (the
configuration in force, after any reload) and the Prometheus registry into a
:class:`~quicreality.status.StatusPage`. :func:`status_source` is what the metrics HTTP thread
calls: it builds and renders the page on the event loop, so it never reads state the loop is
changing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..metrics import REGISTRY
from ..reality.keys import b64url_encode, short_id_fingerprint
from ..relay.config import UpstreamConfig
from ..status import StatusPage, VerdictRow, counters_from_registry, render_html

if TYPE_CHECKING:
    from .reality_server import RealityServer

#: How long the HTTP thread waits for the event loop to build the page.
BUILD_TIMEOUT = 5.0


def describe_upstream(up: UpstreamConfig) -> str:
    """The upstream as the page shows it (its short ID as a fingerprint)."""
    if up.public_key is None:
        return f"{up.server} (plain TLS)"
    return (f"{up.server} (REALITY, SNI {up.server_name}, short ID "
            f"{short_id_fingerprint(up.short_id)}, public key {b64url_encode(up.public_key)})")


def build_status(server: RealityServer, listen: str) -> StatusPage:
    """The page's values now (call on the server's event loop)."""
    config = server.gate.config
    relay = server.relay_config
    verdicts = tuple(
        VerdictRow(at=at, client=client, outcome=v.reason.name,
                   server_name=v.server_name or "",
                   short_id_fp=short_id_fingerprint(v.short_id) if v.short_id is not None else "",
                   detail=v.detail or "")
        for at, client, v in reversed(server.recent_verdicts))
    return StatusPage(
        title=f"quicreality REALITY listener {listen}",
        listen=listen,
        public_key=b64url_encode(config.public_key),
        target=f"{config.target[0]}:{config.target[1]}",
        server_names=tuple(sorted(n or '"" (no SNI)' for n in config.server_names)),
        short_id_fps=tuple(sorted(short_id_fingerprint(i) for i in config.short_ids)),
        allow=tuple(rule.text for rule in relay.allow.rules),
        upstream=describe_upstream(relay.upstream) if relay.upstream is not None else None,
        counters=counters_from_registry(REGISTRY),
        verdicts=verdicts,
        reloads=server.reloads,
        reload_failures=server.reload_failures,
        generated_at=time.time(),
    )


def status_source(server: RealityServer, listen: str) -> Callable[[], str]:
    """A ``MetricsServer.status`` callable: the page's HTML, built on ``server``'s loop."""
    loop: asyncio.AbstractEventLoop = server.loop

    def page() -> str:
        done: concurrent.futures.Future[str] = concurrent.futures.Future()

        def build() -> None:
            try:
                done.set_result(render_html(build_status(server, listen)))
            except BaseException as exc:  # noqa: BLE001 - handed to the HTTP thread
                done.set_exception(exc)

        loop.call_soon_threadsafe(build)
        return done.result(timeout=BUILD_TIMEOUT)

    return page
