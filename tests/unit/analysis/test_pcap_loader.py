"""pcap loaders on real captures (tshark -T fields + JSON for coalesced datagrams; pure pcap
reader for link matching)."""

from __future__ import annotations

import itertools
import math

import pytest
from analysis_paths import DATA

from quicreality.analysis.pcap import load_pcap, varint_size
from quicreality.analysis.pcapfile import read_udp

OURS = DATA / "pcap"
QUICGO = DATA / "pcap-quicgo"
SERVER = ("10.99.2.2", 4433)


@pytest.fixture(scope="module")
def ours_client():  # type: ignore[no-untyped-def]
    return load_pcap(OURS / "client.pcapng")


def test_direction_and_server_inferred_from_the_first_initial(ours_client) -> None:  # type: ignore[no-untyped-def]
    assert ours_client.server == SERVER
    p = ours_client.packets
    assert set(p["direction"]) == {"to_client", "to_server"}
    assert p.iloc[0]["packet_type"] == "initial" and p.iloc[0]["direction"] == "to_server"
    assert p["decrypted"].all()  # keys injected into the pcapng


def test_coalesced_datagrams_split_into_quic_packets(ours_client) -> None:  # type: ignore[no-untyped-def]
    p = ours_client.packets
    per_datagram = p.groupby("frame_no")["quic_index"].max()
    coalesced = per_datagram[per_datagram > 0]
    assert len(coalesced) >= 2  # server's Initial+Handshake+1-RTT, client's reply
    first = p[p["frame_no"] == coalesced.index[0]]
    assert list(first["packet_type"]) == ["initial", "handshake", "1RTT"]
    f = ours_client.frames
    hs = f[(f["frame_no"] == coalesced.index[0]) & (f["packet_type"] == "handshake")]
    assert list(hs["frame_type"]) == ["crypto"]  # frames stay with their own QUIC packet


def test_stream_offsets_cover_the_response_once(ours_client) -> None:  # type: ignore[no-untyped-def]
    sf = ours_client.stream_frames("to_client")
    s0 = sf[sf["stream_id"] == 0].sort_values("offset")
    assert s0["offset"].iloc[0] == 0
    ends = (s0["offset"] + s0["length"]).to_numpy()
    assert ends.max() == s0["length"].sum()  # no gap, no duplicate at the client side
    assert 150_000 < ends.max() < 150_200
    assert s0["fin"].iloc[-1] or s0["fin"].any()


def test_ack_ranges_show_the_two_lost_packets() -> None:
    server_side = load_pcap(OURS / "server.pcap", keylog=OURS / "keys.log")
    acks = server_side.ack_ranges("to_server")
    last = acks[acks["frame_no"] == acks["frame_no"].max()]
    ranges = sorted(zip(last["lo"], last["hi"], strict=False))
    # the holes between the client's last ACK ranges are exactly the packets the server's
    # qlog declared lost (1-RTT 90 and 126), decoded from gap/ack_range pairs (RFC 9000 19.3.1)
    holes = [pn for (_, hi1), (lo2, _) in itertools.pairwise(ranges)
             for pn in range(hi1 + 1, lo2)]
    assert holes == [90, 126]
    assert ranges[0][0] == 0


def test_missing_stream_length_is_reconstructed_for_quicgo() -> None:
    t = load_pcap(QUICGO / "client.pcapng")
    sf = t.stream_frames("to_client")
    s0 = sf[sf["stream_id"] == 0].sort_values("offset")
    assert s0["length_reconstructed"].mean() > 0.9  # quic-go omits LEN on the last frame
    offs, ends = s0["offset"].to_numpy(), (s0["offset"] + s0["length"]).to_numpy()
    assert (offs[1:] == ends[:-1]).all()  # contiguous: every reconstructed length is exact
    assert ends[-1] == 150_080 and not math.isnan(ends[-1])


def test_without_keys_only_long_headers_have_packet_numbers() -> None:
    t = load_pcap(OURS / "client.pcap")
    p = t.packets
    assert len(p) > 150
    assert p.loc[p["packet_type"] == "1RTT", "packet_number"].isna().all()
    assert not p.loc[p["packet_type"] == "1RTT", "decrypted"].any()
    # Initial keys derive from the DCID, so the client's first Initial still decrypts
    assert set(t.frames["packet_type"]) == {"initial"}


def test_pure_reader_matches_tshark_datagram_counts() -> None:
    for cap in ("client.pcap", "client.pcapng", "server.pcap"):
        dgrams = list(read_udp(OURS / cap))
        t = load_pcap(OURS / cap, keylog=OURS / "keys.log")
        assert len(dgrams) == t.packets["frame_no"].nunique(), cap
        assert {d.sport for d in dgrams} >= {4433}


@pytest.mark.parametrize(("v", "n"), [(0, 1), (63, 1), (64, 2), (16383, 2), (16384, 4),
                                      (2**30 - 1, 4), (2**30, 8)])
def test_varint_size(v: int, n: int) -> None:
    assert varint_size(v) == n
