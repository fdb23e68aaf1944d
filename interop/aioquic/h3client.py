#!/usr/bin/env python3
"""HTTP/3 download client on aioquic 1.7.2 (or qh3 with QR_PEER_IMPL=qh3): an interop *peer*
for quicreality (not our stack).

    python interop/aioquic/h3client.py [--insecure | --ca CA.pem] [-o DIR] \
        [--qlog-dir D] [--keylog F] [--cipher-suites CHACHA20_POLY1305_SHA256] \
        [--session-ticket FILE [--0rtt]] [--key-update] URL...

URLs are fetched in order; URLs with the same authority share one QUIC connection. Each body
is written to ``DIR/<basename of the path>`` (``index.html`` for ``/``; nothing is written
without ``-o``). One JSON line per URL goes to stdout, the same shape as the quic-go peer's:

    {"url": ..., "status": 200, "bytes": N, "secs": 0.12, "proto": "HTTP/3", "file": ...}

with ``"error"`` added on failure. Exit status: 0 if every URL gave a status < 400, else 1.

``--session-ticket FILE`` resumes with the ticket in FILE if it exists and saves the tickets the
server sends to it (pickled ``SessionTicket``); with ``--0rtt`` the requests go out before the
handshake completes, i.e. as 0-RTT when the ticket allows early data. ``--key-update``
initiates one key update as soon as the handshake is confirmed (RFC 9001 §6), before the GETs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import pickle
import ssl
import sys
import time
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import add_common_args, apply_common_args, emit
from _impl import NAME, VERSION, load

QuicConnectionProtocol = load("asyncio").QuicConnectionProtocol
connect = load("asyncio").connect
H3_ALPN = load("h3.connection").H3_ALPN
H3Connection = load("h3.connection").H3Connection
DataReceived = load("h3.events").DataReceived
H3Event = load("h3.events").H3Event
HeadersReceived = load("h3.events").HeadersReceived
QuicConfiguration = load("quic.configuration").QuicConfiguration
ConnectionTerminated = load("quic.events").ConnectionTerminated
QuicEvent = load("quic.events").QuicEvent

USER_AGENT = f"quicreality-{NAME}-peer/{VERSION}".encode()


class _Request:
    def __init__(self, sink: BinaryIO | None) -> None:
        self.sink = sink
        self.status = 0
        self.nbytes = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class H3Client(QuicConnectionProtocol):
    """Sequential GETs over one connection."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._h3 = H3Connection(self._quic)
        self._requests: dict[int, _Request] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            for req in self._requests.values():
                if not req.done.done():
                    req.done.set_exception(ConnectionError(
                        f"connection closed: error {event.error_code} {event.reason_phrase!r}"))
        for h3_event in self._h3.handle_event(event):
            self._h3_event_received(h3_event)

    def _h3_event_received(self, event: H3Event) -> None:
        req = self._requests.get(getattr(event, "stream_id", -1))
        if req is None:
            return
        if isinstance(event, HeadersReceived):
            for k, v in event.headers:
                if k == b":status":
                    req.status = int(v)
        elif isinstance(event, DataReceived):
            req.nbytes += len(event.data)
            if req.sink is not None and event.data:
                req.sink.write(event.data)
        if getattr(event, "stream_ended", False) and not req.done.done():
            req.done.set_result(None)

    async def get(self, authority: str, path: str, sink: BinaryIO | None) -> _Request:
        stream_id = self._quic.get_next_available_stream_id()
        req = self._requests[stream_id] = _Request(sink)
        self._h3.send_headers(stream_id, [
            (b":method", b"GET"), (b":scheme", b"https"), (b":authority", authority.encode()),
            (b":path", path.encode()), (b"user-agent", USER_AGENT)], end_stream=True)
        self.transmit()
        try:
            await req.done
        finally:
            del self._requests[stream_id]
        return req


async def _key_update(client: H3Client, timeout: float) -> None:
    """Initiate a key update once the handshake is confirmed (aioquic defers a request made
    earlier itself; qh3 asserts, so wait for the confirmation first)."""
    deadline = time.monotonic() + timeout
    while not client._quic._handshake_confirmed and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    client._quic.request_key_update()
    client.transmit()


def out_name(path: str) -> str:
    base = path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return base or "index.html"


async def fetch_group(urls: list[str], args: argparse.Namespace) -> bool:
    """All ``urls`` share one authority: one connection, GETs in order. True if all succeeded."""
    first = urlsplit(urls[0])
    host, port = first.hostname or "localhost", first.port or 443
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=host,
                               max_datagram_frame_size=65536)
    keylog = apply_common_args(config, args)
    if args.insecure:
        config.verify_mode = ssl.CERT_NONE
    elif args.ca:
        config.load_verify_locations(cafile=args.ca)
    ticket_file = Path(args.session_ticket) if args.session_ticket else None
    if ticket_file is not None and ticket_file.is_file():
        with ticket_file.open("rb") as f:
            config.session_ticket = pickle.load(f)  # our own file

    def save_ticket(ticket: object) -> None:
        if ticket_file is not None:
            with ticket_file.open("wb") as f:
                pickle.dump(ticket, f)
    ok = True
    results: list[dict] = []
    try:
        async with connect(host, port, configuration=config, create_protocol=H3Client,
                           session_ticket_handler=save_ticket if ticket_file else None,
                           wait_connected=not args.zero_rtt) as client:
            assert isinstance(client, H3Client)
            if args.key_update:
                await _key_update(client, args.timeout)

            async def one(url: str) -> dict:
                parts = urlsplit(url)
                path = parts.path or "/"
                if parts.query:
                    path += "?" + parts.query
                res: dict = {"url": url, "status": 0, "bytes": 0, "secs": 0.0, "proto": "HTTP/3"}
                t0 = time.monotonic()
                sink = None
                try:
                    if args.output:
                        res["file"] = str(Path(args.output) / out_name(parts.path))
                        sink = open(res["file"], "wb", buffering=1 << 20)  # noqa: SIM115
                    req = await asyncio.wait_for(client.get(parts.netloc, path, sink), args.timeout)
                    res.update(status=req.status, bytes=req.nbytes)
                    if req.status >= 400 or req.status == 0:
                        res["error"] = f"HTTP status {req.status}"
                except Exception as exc:  # noqa: BLE001 - reported in the JSON line
                    res["error"] = f"{type(exc).__name__}: {exc}"
                finally:
                    if sink is not None:
                        sink.close()
                res["secs"] = round(time.monotonic() - t0, 6)
                emit(res)
                return res

            if args.zero_rtt:  # every request in the first flight, i.e. in 0-RTT
                results.extend(await asyncio.gather(*(one(u) for u in urls)))
            else:
                for url in urls:
                    results.append(await one(url))
            ok = all("error" not in r for r in results)
            client.close()
            await client.wait_closed()
    except Exception as exc:  # noqa: BLE001 - connection failure: report every URL not yet done
        done = {r["url"] for r in results}
        for url in urls:
            if url not in done:
                emit({"url": url, "status": 0, "bytes": 0, "secs": 0.0, "proto": "HTTP/3",
                      "error": f"{type(exc).__name__}: {exc}"})
        ok = False
    finally:
        if keylog is not None:
            keylog.close()
    return ok


async def main(args: argparse.Namespace) -> int:
    if args.output:
        os.makedirs(args.output, exist_ok=True)
    groups: dict[str, list[str]] = {}
    for url in args.urls:
        parts = urlsplit(url)
        if parts.scheme != "https":
            print(f"h3client: not an https URL: {url}", file=sys.stderr)
            return 2
        groups.setdefault(parts.netloc, []).append(url)
    ok = True
    for urls in groups.values():
        ok = await fetch_group(urls, args) and ok
    return 0 if ok else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("urls", nargs="+", metavar="URL")
    p.add_argument("-o", "--output", help="directory to write the bodies to")
    p.add_argument("-k", "--insecure", action="store_true", help="do not verify the server")
    p.add_argument("--ca", help="CA certificate(s) to verify the server with (PEM)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per URL")
    p.add_argument("--session-ticket", metavar="FILE",
                   help="resume with the ticket in FILE if it exists; save new tickets to it")
    p.add_argument("--0rtt", dest="zero_rtt", action="store_true",
                   help="send the requests before the handshake completes (0-RTT with a ticket)")
    p.add_argument("--key-update", action="store_true",
                   help="initiate a key update once the handshake is confirmed")
    add_common_args(p)
    return p.parse_args(argv)


if __name__ == "__main__":
    ARGS = parse_args()
    logging.basicConfig(level=logging.DEBUG if ARGS.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    sys.exit(asyncio.run(main(ARGS)))
