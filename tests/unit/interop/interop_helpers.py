"""Synthetic traces for the verdict tests (the shapes tshark's rows parse into)."""

from __future__ import annotations

from quicreality.interop.trace import V1, Datagram, QuicPacket, Trace
from quicreality.interop.verdicts import Evidence, FileCheck

SERVER, CLIENT = "10.99.2.2", "10.99.1.2"


def dg(n: int, from_server: bool, *packets: QuicPacket, **kw: object) -> Datagram:
    """A datagram ``n`` (time n ms) in one direction."""
    src, dst = (SERVER, CLIENT) if from_server else (CLIENT, SERVER)
    return Datagram(number=n, time=n / 1000, src_ip=src, src_port=443 if from_server else 5000,
                    dst_ip=dst, dst_port=5000 if from_server else 443,
                    size=int(kw.pop("size", 1200)), ecn=kw.pop("ecn", None),  # type: ignore[arg-type]
                    packets=packets, **kw)  # type: ignore[arg-type]


def initial(scid: str, dcid: str = "d0", version: int = V1, token: str = "") -> QuicPacket:
    """An Initial packet."""
    return QuicPacket("initial", version=version, scid=scid, dcid=dcid, length=1100, token=token)


def one_rtt(key_phase: int | None = 0) -> QuicPacket:
    """A 1-RTT packet."""
    return QuicPacket("1rtt", dcid="x", key_phase=key_phase)


def handshake_trace(*server_scids: str, extra: tuple[Datagram, ...] = ()) -> Trace:
    """One client Initial and one server Initial per SCID, then ``extra``."""
    ds = [dg(1, False, initial("c1"))]
    for i, s in enumerate(server_scids):
        ds.append(dg(2 + i, True, initial(s, dcid="c1"), handshake_types=(2,)))
    return Trace(datagrams=(*ds, *extra), server_ip=SERVER)


def evidence(trace: Trace, *, files: FileCheck | None = None, keys: int = 5,
             client: Trace | None = None, **kw: object) -> Evidence:
    """Evidence with the same capture on both sides unless ``client`` is given."""
    return Evidence(server=trace, client=client or trace, files=files or FileCheck(1, 1),
                    keys=keys, **kw)  # type: ignore[arg-type]
