"""The censor opens client Initials (v1 and v2) and reassembles the ClientHello like a real censor."""

from __future__ import annotations

from censor_helpers import (
    ALLOWED,
    BLOCKED,
    CLIENT,
    SERVER,
    hello_of,
    plain_flight,
    reality_flight,
    split_frames,
    split_packets,
    v2_initial,
)

from quicreality.quic.config import QuicConfiguration
from quicreality.quic.connection import QuicConnection
from quicreality.quic.crypto import (
    INITIAL_CIPHER_SUITE,
    QUIC_VERSION_2,
    derive_initial_secrets,
    derive_packet_protection_keys,
)
from quicreality.scenarios.censor import pull_udp_packet, push_udp_packet
from quicreality.scenarios.censor.initial import (
    HelloReader,
    open_client_datagram,
    parse_client_hello,
)
from quicreality.tls.certificates import InsecureVerifier


def test_v2_initial_keys_match_rfc9369_appendix_a1() -> None:
    client, server = derive_initial_secrets(bytes.fromhex("8394c8f03e515708"), QUIC_VERSION_2)
    assert client.hex() == "14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b"
    assert server.hex() == "0263db1782731bf4588e7e4d93b7463907cb8cd8200b5da55a8bd488eafc37c1"
    key, iv, hp = derive_packet_protection_keys(INITIAL_CIPHER_SUITE, client, QUIC_VERSION_2)
    assert (key.hex(), iv.hex(), hp.hex()) == (
        "8b1a0bc121284290a29e0971b5cd045d", "91f73e2351d8fa91660e909f",
        "45b95e15235d6f45a6b19cbcb0294ba9")


def test_udp_packet_roundtrip_keeps_addresses_ports_and_payload() -> None:
    p = pull_udp_packet(push_udp_packet(CLIENT, 40000, SERVER, 443, b"hello"))
    assert p is not None
    assert (p.src, p.sport, p.dst, p.dport, p.payload) == (CLIENT, 40000, SERVER, 443, b"hello")


def test_plain_client_hello_is_read_from_its_first_flight() -> None:
    r = HelloReader()
    for d in plain_flight(BLOCKED):
        r.feed(open_client_datagram(d))
    hello = r.hello()
    assert hello is not None and hello.complete
    assert hello.sni == BLOCKED and hello.alpn == ("h3",)
    assert hello.session_id_len == 0
    assert hello.features()["client.ja4"].startswith("q13d")


def test_reality_session_id_carrier_shows_a_32_byte_session_id() -> None:
    r = HelloReader()
    for d in reality_flight("chrome", "session_id"):
        r.feed(open_client_datagram(d))
    hello = r.hello()
    assert hello is not None and hello.session_id_len == 32 and hello.sni == ALLOWED
    assert 0xFE0D in hello.extensions  # Chrome's shape, ECH GREASE included


def test_chrome_shaped_hello_spans_two_datagrams_and_is_reassembled() -> None:
    flight = reality_flight("chrome")
    assert len(flight) == 2
    r = HelloReader()
    r.feed(open_client_datagram(flight[0]))
    assert r.hello() is None  # half a hello
    r.feed(open_client_datagram(flight[1]))
    hello = r.hello()
    assert hello is not None and hello.session_id_len == 0 and hello.sni == ALLOWED
    assert r.crypto_frames > 2


def test_hello_split_across_packets_and_frames_is_reassembled() -> None:
    hello = hello_of(plain_flight(BLOCKED))
    r = HelloReader()
    for d in split_packets(hello, 50):
        r.feed(open_client_datagram(d))
    got = r.hello()
    assert got is not None and got.sni == BLOCKED
    r = HelloReader()
    r.feed(open_client_datagram(split_frames(hello, 50)))
    got = r.hello()
    assert got is not None and got.sni == BLOCKED


def test_v2_initial_opens_with_the_v2_salt_and_labels() -> None:
    hello = hello_of(plain_flight(BLOCKED))
    read = open_client_datagram(v2_initial(hello))
    assert read.version == QUIC_VERSION_2 and read.error is None
    r = HelloReader()
    r.feed(read)
    got = r.hello()
    assert got is not None and got.sni == BLOCKED


def test_truncated_hello_prefix_still_yields_the_sni_when_it_is_inside() -> None:
    hello = hello_of(plain_flight(BLOCKED))
    part = parse_client_hello(hello[:200])
    assert part is not None and not part.complete and part.sni == BLOCKED
    early = parse_client_hello(hello[:50])
    assert early is not None and early.sni is None


def test_an_initial_missing_its_last_byte_does_not_open() -> None:
    d = plain_flight(BLOCKED)[0]
    read = open_client_datagram(d[:-1])
    assert not read.initials and read.error is not None


def test_our_v2_client_flight_is_read_by_the_censor() -> None:
    """Our client speaking v2 (RFC 9369): the censor opens its real first flight and finds the SNI
    (v2 buys no hiding from an observer that knows the published salt)."""
    cfg = QuicConfiguration(is_client=True, server_name=BLOCKED, rng=lambda n: bytes(range(n)),
                            wall_clock=lambda: 1_780_000_000.0, peer_verifier=InsecureVerifier(),
                            supported_versions=(QUIC_VERSION_2,))
    conn = QuicConnection(configuration=cfg)
    conn.connect(("10.99.2.2", 443), now=0.0)
    (datagram, _), = conn.datagrams_to_send(now=0.0)
    read = open_client_datagram(datagram)
    assert read.version == QUIC_VERSION_2 and read.error is None and read.initials
    reader = HelloReader()
    reader.feed(read)
    hello = reader.hello()
    assert hello is not None and hello.sni == BLOCKED
