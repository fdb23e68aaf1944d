"""The censor lab: an on-path QUIC censor for the userspace emulator (sans-IO).

* :mod:`.wire`: IP/UDP packets as seen on the link;
* :mod:`.initial`: opening client Initials (v1 and v2), reassembling and parsing the ClientHello;
* :mod:`.policies`: ``sni-blocklist``, ``gfw-2025``, ``fingerprint``, ``active-probe``;
* :mod:`.core`: :class:`Censor`, the flow table, residual blocks and the decision log;
* :mod:`.config`: the scenario file's ``[censor]`` table.

Nothing here imports ``socket``, ``asyncio`` or ``time``: every call takes ``now``. The emulator
(:mod:`quicreality.scenarios.emulator.relay`) performs the drops and runs the prober.
"""

from .config import POLICY_NAMES, CensorConfigError, build_censor, load_censor
from .core import Censor, ProbeRequest
from .initial import HelloReader, ParsedHello, open_client_datagram, parse_client_hello
from .policies import Action, Decision
from .wire import UdpPacket, pull_udp_packet, push_udp_packet

__all__ = [
    "POLICY_NAMES",
    "Action",
    "Censor",
    "CensorConfigError",
    "Decision",
    "HelloReader",
    "ParsedHello",
    "ProbeRequest",
    "UdpPacket",
    "build_censor",
    "load_censor",
    "open_client_datagram",
    "parse_client_hello",
    "pull_udp_packet",
    "push_udp_packet",
]
