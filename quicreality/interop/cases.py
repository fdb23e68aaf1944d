"""The interop cases: every quic-interop-runner (QIR) test case and measurement, as data.

Theory of operation
-------------------
A :class:`Case` says what QIR's ``testcases_quic.py`` says about a case, in our terms:

* ``abbr``/``name``/``desc``: QIR's abbreviation, name and description (they end up in
  ``result.json``, so QIR's page shows our cases under its own letters);
* ``link``: the emulated link (:class:`~quicreality.scenarios.model.Link`) that QIR's ns-3
  scenario string describes, e.g. ``simple-p2p --delay=15ms --bandwidth=10Mbps --queue=25``
  becomes 15 ms one-way delay, 10 Mbit/s and a 25-packet drop-tail queue per direction;
* ``files``: the sizes of the random files the server serves and the client fetches;
* ``testname``: the ``TESTCASE`` each endpoint is told (QIR runs several cases under the name
  ``transfer`` or ``multiconnect``);
* ``check``: the name of the wire verdict in :mod:`.verdicts`;
* ``needs``: link stages the emulator must offer (``rebind``: the migrate engineer's
  rebinding stage; ``ipv6``: IPv6 on the runner's links).  Without them the runner reports
  the case as not run (``null`` in ``result.json``), never as a verdict.

Differences from QIR, on purpose: our peers speak HTTP/3 in every case (QIR uses hq-interop
except in ``http3``); the links are kernel paths through our userspace emulator instead of ns-3.
QIR's ``drop-rate --burst=3`` is random loss capped at 3 drops in a row (the emulator's
``loss_max_burst``); ``corrupt-rate`` flips one bit per corrupted packet and fixes the UDP
checksum, so it is the peer's AEAD that must reject it (no burst cap).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ..scenarios.model import Blackhole, Impairment, Link

__all__ = ["CASES", "KB", "MB", "Case", "CaseError", "by_name", "select"]

KB = 1 << 10
MB = 1 << 20

#: QIR's default scenario: ``simple-p2p --delay=15ms --bandwidth=10Mbps --queue=25``.
P2P = Impairment(delay_ms=15.0, rate_mbit=10.0, queue_packets=25)


def _sym(imp: Impairment) -> Link:
    return Link(to_server=imp, to_client=imp)


def _bursty(rate: float) -> Impairment:
    """QIR ``drop-rate --rate_to_*=R --burst_to_*=3``: random loss R, at most 3 in a row."""
    return replace(P2P, loss=rate, loss_max_burst=3)


def _corrupting(rate: float) -> Impairment:
    """QIR ``corrupt-rate --rate_to_*=R``: corrupt a fraction R of the packets (AEAD must drop)."""
    return replace(P2P, corrupt=rate, corrupt_fix_checksum=True)


class CaseError(ValueError):
    """An unknown case name in ``--tests``."""


@dataclass(frozen=True, slots=True)
class Case:
    """One QIR test case or measurement (see the module docstring)."""

    abbr: str
    name: str
    desc: str
    files: tuple[int, ...]
    check: str
    link: Link = field(default_factory=lambda: _sym(P2P))
    link_text: str = "simple-p2p 15ms 10Mbps q25"
    client_testname: str = ""
    server_testname: str = ""
    timeout_s: float = 60.0
    measurement: bool = False
    repetitions: int = 1
    needs: frozenset[str] = frozenset()
    crosstraffic: bool = False
    #: zerortt: QIR's long file names (250 characters)
    long_names: bool = False
    #: amplificationlimit: a certificate of more than 7500 bytes (QIR: a 9-certificate chain)
    big_cert: bool = False

    def testname(self, role: str) -> str:
        """The ``TESTCASE`` the endpoint of ``role`` is told."""
        name = self.client_testname if role == "client" else self.server_testname
        return name or self.name


def _p2p_case(abbr: str, name: str, desc: str, files: tuple[int, ...], check: str,
              **kw: object) -> Case:
    return Case(abbr=abbr, name=name, desc=desc, files=files, check=check, **kw)  # type: ignore[arg-type]


#: Every case in QIR's order (tests, then measurements).
CASES: tuple[Case, ...] = (
    _p2p_case("V", "versionnegotiation", "A version negotiation packet is elicited and acted on.",
              (), "versionnegotiation"),
    _p2p_case("H", "handshake", "Handshake completes successfully.", (1 * KB,), "handshake"),
    _p2p_case("DC", "transfer", "Stream data is being sent and received correctly. Connection "
              "close completes with a zero error code.", (2 * MB, 3 * MB, 5 * MB), "handshake"),
    Case("LR", "longrtt", "Handshake completes when RTT is long.", (1 * KB,), "longrtt",
         link=_sym(replace(P2P, delay_ms=750.0)), link_text="simple-p2p 750ms 10Mbps q25",
         client_testname="handshake", server_testname="handshake", timeout_s=120.0),
    _p2p_case("C20", "chacha20", "Handshake completes using ChaCha20.", (3 * MB,), "chacha20"),
    _p2p_case("M", "multiplexing", "Thousands of files are transferred over a single connection, "
              "and server increased stream limits to accomodate client requests.",
              (32,) * 1999, "multiplexing", client_testname="transfer",
              server_testname="transfer", timeout_s=120.0),
    _p2p_case("S", "retry", "Server sends a Retry, and a subsequent connection using the Retry "
              "token completes successfully.", (10 * KB,), "retry"),
    _p2p_case("R", "resumption", "Connection is established using TLS Session Resumption.",
              (5 * KB, 10 * KB), "resumption"),
    _p2p_case("Z", "zerortt", "0-RTT data is being sent and acted on.", (32,) * 40, "zerortt",
              long_names=True),
    _p2p_case("3", "http3", "An H3 transaction succeeded.", (5 * KB, 10 * KB, 500 * KB),
              "handshake"),
    Case("B", "blackhole", "Transfer succeeds despite underlying network blacking out for a few "
         "seconds.", (10 * MB,), "handshake",
         link=_sym(replace(P2P, blackhole=Blackhole(on_s=5.0, off_s=2.0, repeat=3))),
         link_text="blackhole 15ms 10Mbps q25 on=5s off=2s", client_testname="transfer",
         server_testname="transfer", timeout_s=90.0),
    _p2p_case("U", "keyupdate", "One of the two endpoints updates keys and the peer responds "
              "correctly.", (3 * MB,), "keyupdate", server_testname="transfer"),
    _p2p_case("E", "ecn", "Explicit Congestion Notification: both sides mark ECT and send "
              "ACK_ECN counts.", (100 * KB,), "ecn"),
    Case("A", "amplificationlimit", "The server obeys the 3x amplification limit.", (5 * KB,),
         "amplificationlimit", client_testname="transfer", server_testname="transfer",
         link=Link(to_server=replace(P2P, drop_packets=(2, 3, 4, 5, 6, 7)), to_client=P2P),
         link_text="droplist 15ms 10Mbps q25 drops_to_server=2..7", big_cert=True),
    Case("L1", "handshakeloss", "Handshake completes under extreme packet loss.",
         (1 * KB,) * 50, "multiconnect", link=_sym(_bursty(0.30)),
         link_text="drop-rate 15ms 10Mbps q25 30% max burst 3", client_testname="multiconnect",
         server_testname="multiconnect", timeout_s=300.0),
    Case("L2", "transferloss", "Transfer completes under moderate packet loss.", (2 * MB,),
         "handshake", link=_sym(_bursty(0.02)), link_text="drop-rate 15ms 10Mbps q25 2% max burst 3",
         client_testname="transfer", server_testname="transfer"),
    Case("C1", "handshakecorruption", "Handshake completes under extreme packet corruption.",
         (1 * KB,) * 50, "multiconnect", link=_sym(_corrupting(0.30)),
         link_text="corrupt-rate 15ms 10Mbps q25 30%", client_testname="multiconnect",
         server_testname="multiconnect", timeout_s=300.0),
    Case("C2", "transfercorruption", "Transfer completes under moderate packet corruption.",
         (2 * MB,), "handshake", link=_sym(_corrupting(0.02)),
         link_text="corrupt-rate 15ms 10Mbps q25 2%", client_testname="transfer",
         server_testname="transfer"),
    Case("6", "ipv6", "A transfer across an IPv6-only network succeeded.", (5 * KB, 10 * KB),
         "ipv6", client_testname="transfer", server_testname="transfer",
         needs=frozenset({"ipv6"})),
    _p2p_case("V2", "v2", "Server should select QUIC v2 in compatible version negotiation.",
              (1 * KB,), "v2"),
    Case("BP", "rebind-port", "Transfer completes under frequent port rebindings on the client "
         "side.", (10 * MB,), "rebind-port", client_testname="transfer",
         server_testname="transfer", needs=frozenset({"rebind"}),
         link_text="rebind 15ms 10Mbps q25 first=1s every 5s"),
    Case("BA", "rebind-addr", "Transfer completes under frequent IP address and port rebindings "
         "on the client side.", (10 * MB,), "rebind-addr", client_testname="transfer",
         server_testname="transfer", needs=frozenset({"rebind"}),
         link_text="rebind 15ms 10Mbps q25 addr first=1s every 5s"),
    _p2p_case("CM", "connectionmigration", "A transfer succeeded during which the client "
              "performed an active migration.", (2 * MB,), "connectionmigration",
              client_testname="connectionmigration", server_testname="connectionmigration"),
    Case("G", "goodput", "Measures connection goodput over a 10Mbps link.", (10 * MB,),
         "goodput", client_testname="transfer", server_testname="transfer", measurement=True,
         repetitions=5),
    Case("C", "crosstraffic", "Measures goodput over a 10Mbps link when competing with a TCP "
         "(cubic) connection.", (25 * MB,), "goodput", client_testname="transfer",
         server_testname="transfer", measurement=True, repetitions=5, crosstraffic=True,
         timeout_s=180.0),
)

_BY_NAME: Mapping[str, Case] = {c.name: c for c in CASES}


def by_name(name: str) -> Case:
    """The case called ``name`` (QIR's name, e.g. ``handshake``) or with that abbreviation."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    for c in CASES:
        if c.abbr == name:
            return c
    raise CaseError(f"unknown test case {name!r} (see `python -m quicreality.interop list`)")


def select(names: str | None) -> tuple[Case, ...]:
    """The cases of a ``--tests`` value (comma-separated names), in QIR's order; all if None."""
    if names is None or not names.strip():
        return CASES
    wanted = {by_name(n.strip()).name for n in names.split(",") if n.strip()}
    return tuple(c for c in CASES if c.name in wanted)
