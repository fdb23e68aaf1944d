#!/usr/bin/env python3
"""HTTP/3 file server on aioquic 1.7.2 (or qh3 with QR_PEER_IMPL=qh3): an interop *peer*
for quicreality (not our stack).

    python interop/aioquic/h3server.py --host 127.0.0.1 --port 4433 \
        --certificate cert.pem --private-key key.pem --www DIR \
        [--qlog-dir D] [--keylog F] [--cipher-suites CHACHA20_POLY1305_SHA256] [--retry] [--tickets]

* ``GET /<path>`` serves the file ``DIR/<path>`` (``/`` -> ``index.html``), 404 otherwise.
* ``GET /bytes/N`` answers N bytes; the byte at offset i is ``i % 256`` (as the quic-go peer).
* Once the UDP socket is bound it prints ``{"event": "listening", "addr": "HOST:PORT"}`` on stdout
  (``--port 0`` lets the kernel choose).
* SIGINT/SIGTERM close the connections, write their qlog traces and exit 0.

Responses are sent in 64 KiB chunks with back-pressure on the QUIC stream's send buffer, so
large bodies are not held in memory at once.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import PATTERN_BLOCK, add_common_args, apply_common_args, emit, flush_qlog
from _impl import NAME, VERSION, load

QuicConnectionProtocol = load("asyncio").QuicConnectionProtocol
serve = load("asyncio").serve
H3_ALPN = load("h3.connection").H3_ALPN
H3Connection = load("h3.connection").H3Connection
DataReceived = load("h3.events").DataReceived
H3Event = load("h3.events").H3Event
HeadersReceived = load("h3.events").HeadersReceived
QuicConfiguration = load("quic.configuration").QuicConfiguration
ProtocolNegotiated = load("quic.events").ProtocolNegotiated
QuicEvent = load("quic.events").QuicEvent

CHUNK = 1 << 16
MAX_BUFFERED = 4 << 20  # bytes queued in one stream before the sender waits
MAX_BYTES = 1 << 34
SERVER_NAME = f"quicreality-{NAME}-peer/{VERSION}".encode()


class H3FileServer(QuicConnectionProtocol):
    """One QUIC connection: HTTP/3 GET of files and /bytes/N."""

    www: Path | None = None

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._h3: H3Connection | None = None
        self._tasks: set[asyncio.Task] = set()

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self._h3 = H3Connection(self._quic)
        if self._h3 is not None:
            for h3_event in self._h3.handle_event(event):
                self._h3_event_received(h3_event)

    def _h3_event_received(self, event: H3Event) -> None:
        if isinstance(event, HeadersReceived):
            headers = dict(event.headers)
            method = headers.get(b":method", b"").decode()
            path = headers.get(b":path", b"/").decode()
            task = asyncio.ensure_future(self._respond(event.stream_id, method, path))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif isinstance(event, DataReceived):
            pass  # request bodies are ignored

    def _buffered(self, stream_id: int) -> int:
        """Bytes queued but not yet acknowledged on ``stream_id`` (aioquic internals, best effort)."""
        stream = getattr(self._quic, "_streams", {}).get(stream_id)
        sender = getattr(stream, "sender", None)
        if sender is None:
            return 0
        return int(getattr(sender, "_buffer_stop", 0) - getattr(sender, "_buffer_start", 0))

    async def _send_body(self, stream_id: int, chunks) -> None:  # type: ignore[no-untyped-def]
        assert self._h3 is not None
        for chunk in chunks:
            while self._buffered(stream_id) > MAX_BUFFERED:
                if self._quic._state.name in ("CLOSING", "DRAINING", "TERMINATED"):
                    return
                await asyncio.sleep(0.002)
            self._h3.send_data(stream_id, chunk, end_stream=False)
            self.transmit()
        self._h3.send_data(stream_id, b"", end_stream=True)
        self.transmit()

    def _headers(self, status: int, length: int | None, ctype: str) -> list[tuple[bytes, bytes]]:
        h = [(b":status", str(status).encode()), (b"server", SERVER_NAME),
             (b"content-type", ctype.encode())]
        if length is not None:
            h.append((b"content-length", str(length).encode()))
        return h

    def _error(self, stream_id: int, status: int, text: str) -> None:
        assert self._h3 is not None
        body = (text + "\n").encode()
        self._h3.send_headers(stream_id, self._headers(status, len(body), "text/plain"))
        self._h3.send_data(stream_id, body, end_stream=True)
        self.transmit()

    async def _respond(self, stream_id: int, method: str, raw_path: str) -> None:
        assert self._h3 is not None
        path = raw_path.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return self._error(stream_id, 405, "method not allowed")
        head = method == "HEAD"
        try:
            if path.startswith("/bytes/"):
                try:
                    n = int(path[len("/bytes/"):])
                except ValueError:
                    n = -1
                if not 0 <= n <= MAX_BYTES:
                    return self._error(stream_id, 400, "bad byte count")
                self._h3.send_headers(stream_id, self._headers(200, n, "application/octet-stream"),
                                      end_stream=head)
                self.transmit()
                if not head:
                    full, rest = divmod(n, CHUNK)
                    chunks = [PATTERN_BLOCK] * full + ([PATTERN_BLOCK[:rest]] if rest else [])
                    await self._send_body(stream_id, chunks)
                return
            if self.www is None:
                return self._error(stream_id, 404, "not found")
            rel = path.lstrip("/") or "index.html"
            target = (self.www / rel).resolve()
            if self.www not in target.parents or not target.is_file():
                return self._error(stream_id, 404, "not found")
            size = target.stat().st_size
            self._h3.send_headers(stream_id, self._headers(200, size, "application/octet-stream"),
                                  end_stream=head)
            self.transmit()
            if not head:
                with target.open("rb") as f:
                    await self._send_body(stream_id, iter(lambda: f.read(CHUNK), b""))
        except Exception as exc:  # noqa: BLE001 - one bad request must not kill the server
            print(f"h3server: {path}: {exc!r}", file=sys.stderr)


async def main(args: argparse.Namespace) -> int:
    config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN,
                               max_datagram_frame_size=65536)
    config.load_cert_chain(args.certificate, args.private_key)
    keylog = apply_common_args(config, args)
    H3FileServer.www = Path(args.www).resolve() if args.www else None

    tickets: dict[bytes, object] = {}  # single-use: a resumed ticket is popped (no 0-RTT replay)
    server = await serve(args.host, args.port, configuration=config,
                         create_protocol=H3FileServer, retry=args.retry,
                         session_ticket_fetcher=(lambda label: tickets.pop(label, None))
                         if args.tickets else None,
                         session_ticket_handler=(lambda t: tickets.__setitem__(t.ticket, t))
                         if args.tickets else None)
    sock = server._transport.get_extra_info("sockname")  # type: ignore[union-attr]
    emit({"event": "listening", "addr": f"{sock[0]}:{sock[1]}"})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    for proto in list(getattr(server, "_protocols", {}).values()):
        try:
            proto.close()
        except Exception as exc:  # noqa: BLE001 - keep closing the others
            print(f"h3server: close: {exc!r}", file=sys.stderr)
    await asyncio.sleep(0.05)
    server.close()
    flush_qlog(config.quic_logger)
    if keylog is not None:
        keylog.close()
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=4433, help="UDP port (0 = any free port)")
    p.add_argument("--certificate", "--cert", required=True, help="certificate chain (PEM)")
    p.add_argument("--private-key", "--key", required=True, help="private key (PEM)")
    p.add_argument("--www", help="directory to serve")
    p.add_argument("--retry", action="store_true", help="send a Retry to every new connection")
    p.add_argument("--tickets", action="store_true",
                   help="accept session resumption and 0-RTT (in-memory, single-use tickets)")
    add_common_args(p)
    return p.parse_args(argv)


if __name__ == "__main__":
    ARGS = parse_args()
    logging.basicConfig(level=logging.DEBUG if ARGS.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    sys.exit(asyncio.run(main(ARGS)))
