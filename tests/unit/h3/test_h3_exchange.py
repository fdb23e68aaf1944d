"""HTTP/3 client <-> server over the fake in-memory QUIC pair."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from h3fake import FakePair

from quicreality.h3.client import H3Client
from quicreality.h3.connection import H3Connection
from quicreality.h3.server import H3FileServer, H3ServerSession, deterministic_bytes
from quicreality.quic.errors import LocalProtocolError


class Setup:
    """A client and a file server wired through a FakePair."""

    def __init__(
        self, root: Path | None = None, *, seed: int = 0, chunk=None, high_water: int = 65536
    ):
        self.pair = FakePair(seed=seed, chunk=chunk)
        self.client_h3 = H3Connection(self.pair.client, is_client=True)
        self.server_h3 = H3Connection(self.pair.server, is_client=False)
        self.client = H3Client(self.client_h3, authority="example.test")
        self.session = H3ServerSession(
            self.server_h3, H3FileServer(root), chunk_size=16384, high_water=high_water
        )
        self.pair.client_handler = self.client.handle_event
        self.pair.server_handler = self.session.handle_event

    def run(self) -> None:
        self.pair.run(pump=self.session.pump)


@pytest.mark.parametrize("seed", range(5))
def test_hundred_concurrent_requests_in_arbitrary_chunkings(seed: int) -> None:
    s = Setup(seed=seed)
    rng = random.Random(seed)
    sizes = [rng.choice([0, 1, 2, 100, 1199, 1200, 4097, 30000]) for _ in range(100)]
    ids = [s.client.get(f"/bytes/{n}") for n in sizes]
    s.run()
    assert s.client.all_done
    for sid, n in zip(ids, sizes, strict=False):
        rec = s.client.responses[sid]
        assert rec.ok, rec.error
        assert rec.status == 200
        assert bytes(rec.body) == deterministic_bytes(0, n)
        assert (b"content-length", str(n).encode()) in rec.headers
    assert s.pair.client.closed is None and s.pair.server.closed is None
    assert s.session.active_streams == 0


def test_one_byte_chunks_everywhere() -> None:
    s = Setup(chunk=lambda rng: 1)
    ids = [s.client.get(p) for p in ("/bytes/0", "/bytes/1", "/bytes/300", "/nope")]
    s.run()
    statuses = [s.client.responses[i].status for i in ids]
    assert statuses == [200, 200, 200, 404]
    assert bytes(s.client.responses[ids[2]].body) == deterministic_bytes(0, 300)
    assert s.client.responses[ids[0]].body == b""
    assert s.client.responses[ids[1]].body == deterministic_bytes(0, 1)


def test_five_megabyte_body_to_a_sink() -> None:
    got = bytearray()
    offsets: list[int] = []

    def sink(offset: int, chunk: bytes) -> None:
        offsets.append(offset)
        got.extend(chunk)

    s = Setup(chunk=lambda rng: rng.choice([1, 1200, 1452, 16000]), high_water=200_000)
    n = 5 * 1024 * 1024
    sid = s.client.get(f"/bytes/{n}", sink=sink)
    s.run()
    rec = s.client.responses[sid]
    assert rec.ok and rec.status == 200 and rec.bytes_received == n
    assert rec.body == b""  # went to the sink
    assert got == deterministic_bytes(0, n)
    assert offsets[0] == 0


def test_files_traversal_and_errors(tmp_path: Path) -> None:
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_bytes(b"<h1>hi</h1>")
    (root / "sub" / "data.bin").write_bytes(bytes(range(256)) * 100)
    (tmp_path / "secret.txt").write_bytes(b"secret")
    (root / "escape").symlink_to(tmp_path / "secret.txt")
    s = Setup(root)
    paths = [
        "/index.html",
        "/sub/data.bin",
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/escape",
        "/sub",
        "/",
        "/missing",
        "/bytes/abc",
    ]
    ids = {p: s.client.get(p) for p in paths}
    head_id = s.client.get("/index.html", method="HEAD")
    post_id = s.client.get("/index.html", method="POST")
    s.run()
    r = {p: s.client.responses[i] for p, i in ids.items()}
    assert r["/index.html"].status == 200 and bytes(r["/index.html"].body) == b"<h1>hi</h1>"
    assert (b"content-type", b"text/html") in r["/index.html"].headers
    assert bytes(r["/sub/data.bin"].body) == bytes(range(256)) * 100
    for p in paths[2:]:
        assert r[p].status == 404, p
        assert b"secret" not in r[p].body
    head = s.client.responses[head_id]
    assert head.ok and head.status == 200 and head.body == b""
    assert (b"content-length", b"11") in head.headers
    assert s.client.responses[post_id].status == 405


def test_server_only_bytes_when_no_root() -> None:
    s = Setup(None)
    a, b = s.client.get("/index.html"), s.client.get("/bytes/10")
    s.run()
    assert s.client.responses[a].status == 404
    assert s.client.responses[b].status == 200


def test_goaway_rejects_later_requests() -> None:
    s = Setup()
    first = s.client.get("/bytes/10")
    s.run()
    s.server_h3.send_goaway()
    s.run()
    assert s.client_h3.goaway_received == first + 4
    with pytest.raises(LocalProtocolError):
        s.client.get("/bytes/1")
    assert s.client.responses[first].ok


def test_trailers_and_unknown_frames_are_handled() -> None:
    pair = FakePair(seed=3)
    c = H3Connection(pair.client, is_client=True)
    srv = H3Connection(pair.server, is_client=False)
    seen_server: list = []
    seen_client: list = []
    pair.server_handler = lambda ev: seen_server.extend(srv.handle_event(ev))
    pair.client_handler = lambda ev: seen_client.extend(c.handle_event(ev))
    sid = c.get_next_request_stream_id()
    c.send_headers(
        sid,
        [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"x"), (b":path", b"/")],
    )
    pair.client.send_stream_data(sid, bytes([0x21, 3]) + b"abc")  # reserved (grease) frame type
    c.send_data(sid, b"hello")
    c.send_headers(sid, [(b"x-trailer", b"1")], end_stream=True)
    pair.run()
    from quicreality.h3.events import DataReceived, HeadersReceived

    body = b"".join(e.data for e in seen_server if isinstance(e, DataReceived))
    heads = [e for e in seen_server if isinstance(e, HeadersReceived)]
    assert body == b"hello"
    assert heads[1].headers == [(b"x-trailer", b"1")]
    ended = [e for e in seen_server if getattr(e, "stream_ended", False)]
    assert len(ended) == 1 and ended[0].stream_id == sid
    assert pair.server.closed is None
