"""Censor policies: decisions over one flow's packets and ClientHello, returned as values.

A policy's :meth:`Policy.judge` sees a :class:`FlowView` (the packet, what opened of it, the
flow's reassembled hello so far, a per-policy scratch dict) and returns ``None`` (not decided
yet: show me the next packet) or a :class:`Decision` with a reason. :class:`~.core.Censor` asks
every policy in order until each has decided; the first ``block`` wins.

The ``gfw-2025`` rules and where they come from (Zohaib et al., "Exposing and Circumventing
SNI-based QUIC Censorship of the Great Firewall of China", USENIX Security 2025; the artifact
repository ``gfw-report/usenixsecurity25-quic-sni``):

* **source port >= destination port only** -- paper §3.3 ("Blocking Rule: Source Port >=
  Destination Port", Figures 3 and 11); artifact claim C2 (``ae-appendix/usenix25-ae.tex``),
  ``experiments/rule-srcport-greater-than-dst-port/``.
* **the first packet of a flow only** -- artifact claim C4 / README "Experiment 4": a random UDP
  payload sent before the Client Initial on the same 4-tuple lets the Initial through.
* **60 s flow tracking** -- ``experiments/flow-tracking-time/README``: a flow (4-tuple) is
  tracked "for exactly 60 seconds"; an Initial sent 60 s after the flow's last packet is
  judged again as a first packet.
* **residual 3-tuple block of 180 s** -- ``experiments/availability-attack/README.md``: "a
  single such packet is sufficient to trigger the GFW's 180-second residual censorship" on
  (src IP, dst IP, dst port). The censorship is residual: the triggering packet itself gets
  through (paper §3.2 measures the blocking latency); ``drop_trigger`` is therefore false.
* **parser quirks** -- paper §3.6 ("Parsing Idiosyncrasies", Figure 5, Table 3; the payloads
  are in ``experiments/what-triggers-blocking/payloads/``): a QUIC v2 Initial is not blocked
  (row 10); a packet that does not open (last byte removed) is not (row 2); a CRYPTO frame of
  Length 0 still followed by the hello *is* blocked (row 6: the parser reads past Length); a
  CRYPTO frame behind PING and PADDING frames is not (row 8); a 255-byte connection ID is not
  (row 5). **Our reading** of rows 6 and 8 is that the parser looks at the first frame of the
  first Initial only and reads the hello from it; we therefore also let a hello whose SNI is not
  in that first CRYPTO frame pass (a hello split across CRYPTO frames or packets), which is the
  paper's circumvention advice of splitting the first flight. Each quirk can be switched off.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from ...quic.packet import QUIC_VERSION_1
from .initial import DatagramRead, HelloReader, ParsedHello, parse_client_hello
from .wire import FlowKey, UdpPacket

__all__ = [
    "GFW_QUIRKS",
    "Action",
    "ActiveProbe",
    "Decision",
    "FeatureRule",
    "Fingerprint",
    "FlowView",
    "Gfw2025",
    "Policy",
    "SniBlocklist",
    "domain_matches",
]

#: The parser quirks of ``gfw-2025`` (all on by default).
GFW_QUIRKS = ("v1-only", "first-frame-crypto", "first-crypto-frame-only", "ignore-crypto-length")


class Action(Enum):
    """What a policy decided about a flow."""

    PASS = "pass"  #: this policy is done with the flow and lets it through
    BLOCK = "block"  #: drop the flow (and the 3-tuple for ``residual_s``)
    PROBE = "probe"  #: send the active prober; block if the server is not target-like


@dataclass(frozen=True, slots=True)
class Decision:
    """A policy's decision about one flow.

    Attributes:
        action: pass, block or probe.
        policy: The policy's name.
        reason: Why, in one line (goes to ``censor.jsonl``).
        residual_s: Also block the 3-tuple (client IP, server IP, server port) this long.
        drop_trigger: Drop the packet that triggered the block (False: residual-only).
    """

    action: Action
    policy: str
    reason: str
    residual_s: float = 0.0
    drop_trigger: bool = True


@dataclass
class FlowView:
    """What a policy sees of a client->server packet and its flow.

    Attributes:
        key: The flow (client IP, client port, server IP, server port).
        index: 1-based number of this packet among the flow's client->server packets.
        packet: The packet.
        read: What opened of its payload.
        reader: The flow's CRYPTO reassembly (this packet included).
        state: Per-policy scratch space of this flow (``state[policy.name]``).
        now: The caller's clock.
    """

    key: FlowKey
    index: int
    packet: UdpPacket
    read: DatagramRead
    reader: HelloReader
    state: dict[str, Any] = field(default_factory=dict)
    now: float = 0.0

    @property
    def hello(self) -> ParsedHello | None:
        """The reassembled ClientHello once complete."""
        return self.reader.hello()


class Policy(Protocol):
    """A censor policy (registered by name in :mod:`.config`)."""

    @property
    def name(self) -> str:
        """The policy's name (``gfw-2025``...)."""
        ...

    def judge(self, view: FlowView) -> Decision | None:
        """A decision about the flow, or None to see its next packet."""
        ...


def domain_matches(sni: str | None, domains: Iterable[str], *, suffix: bool = True) -> str | None:
    """The list entry ``sni`` matches (exactly, or as a subdomain when ``suffix``), or None."""
    if not sni:
        return None
    name = sni.lower().rstrip(".")
    for d in domains:
        d = d.lower().rstrip(".")
        if name == d or (suffix and name.endswith("." + d)):
            return d
    return None


@dataclass(frozen=True, slots=True)
class SniBlocklist:
    """Block flows whose reassembled ClientHello names a listed server (a thorough censor).

    Attributes:
        domains: Blocked names (subdomains match too with ``suffix``).
        suffix: Match subdomains.
        residual_s: 3-tuple residual block after a hit.
        max_packets: Give up (pass) if no complete hello arrived in this many packets.
    """

    domains: tuple[str, ...]
    suffix: bool = True
    residual_s: float = 0.0
    max_packets: int = 8
    name: str = "sni-blocklist"

    def judge(self, view: FlowView) -> Decision | None:
        """Block on a listed SNI once the hello is complete."""
        hello = view.hello
        if hello is None:
            return give_up_without_hello(view, self.max_packets, self.name)
        hit = domain_matches(hello.sni, self.domains, suffix=self.suffix)
        if hit is None:
            return Decision(Action.PASS, self.name, f"sni {hello.sni!r} not on the blocklist")
        return Decision(Action.BLOCK, self.name, f"sni {hello.sni!r} on the blocklist ({hit})",
                        residual_s=self.residual_s)


@dataclass(frozen=True, slots=True)
class Gfw2025:
    """The measured behaviour of the GFW's QUIC SNI censor (see the module docstring for sources).

    Attributes:
        domains: The QUIC blocklist (subdomains match too).
        residual_s: Residual block of the 3-tuple after a hit (180 s measured).
        quirks: Parser quirks in force (:data:`GFW_QUIRKS`).
        min_sport_ge_dport: Inspect only flows with source port >= destination port.
        drop_trigger: Drop the triggering packet too (False: residual-only, as measured).
    """

    domains: tuple[str, ...]
    residual_s: float = 180.0
    quirks: tuple[str, ...] = GFW_QUIRKS
    min_sport_ge_dport: bool = True
    drop_trigger: bool = False
    name: str = "gfw-2025"

    def _pass(self, why: str) -> Decision:
        return Decision(Action.PASS, self.name, why)

    def judge(self, view: FlowView) -> Decision | None:
        """Judge the flow's first packet; every later packet follows that decision."""
        p = view.packet
        if view.index > 1:
            return self._pass("not the first packet of the flow (only first packets are judged)")
        if self.min_sport_ge_dport and p.sport < p.dport:
            return self._pass(f"source port {p.sport} < destination port {p.dport}: not inspected")
        read = view.read
        if not read.quic:
            return self._pass("first packet is not a QUIC long header: flow exempt while tracked")
        if "v1-only" in self.quirks and read.version != QUIC_VERSION_1:
            return self._pass(f"version 0x{read.version or 0:08x}: only v1 Initials are parsed")
        if not read.initials:
            return self._pass(f"first packet holds no Initial that opens ({read.error})")
        first = read.initials[0]
        crypto = [fr for fr in first.frames if fr.type == 0x06]
        if not crypto:
            return self._pass("first Initial carries no CRYPTO frame")
        if "first-frame-crypto" in self.quirks and first.frames[0].type != 0x06:
            return self._pass(f"first frame is {first.frames[0].name}, not CRYPTO: hello not found")
        if "first-crypto-frame-only" in self.quirks:
            fr = crypto[0]
            if fr.offset != 0:
                return self._pass(f"first CRYPTO frame at offset {fr.offset}: hello not found")
            data = fr.rest if ("ignore-crypto-length" in self.quirks and fr.length == 0) else fr.data
            hello = parse_client_hello(data)
        else:
            reader = HelloReader()
            reader.feed(read)
            have = reader.assembly.contiguous()
            hello = parse_client_hello(bytes(reader.assembly.data[:have])) if have else None
        if hello is None or hello.sni is None:
            return self._pass("no SNI in the part of the hello the parser reads")
        hit = domain_matches(hello.sni, self.domains)
        if hit is None:
            return self._pass(f"sni {hello.sni!r} not on the QUIC blocklist")
        return Decision(Action.BLOCK, self.name,
                        f"sni {hello.sni!r} on the QUIC blocklist ({hit}); 3-tuple blocked "
                        f"{self.residual_s:g} s", residual_s=self.residual_s,
                        drop_trigger=self.drop_trigger)


_OPS = ("equals", "not_equals", "in", "contains", "matches", "at_least", "at_most")


#: Short names a scenario file may use for a fingerprint feature.
FEATURE_ALIASES = {"sni": "server_name"}


def _feature(features: Mapping[str, Any], name: str) -> Any:
    name = FEATURE_ALIASES.get(name, name)
    for key in (name, f"client.tls.{name}", f"client.{name}"):
        if key in features:
            return features[key]
    return None


def give_up_without_hello(view: FlowView, max_packets: int, policy: str) -> Decision | None:
    """While a flow's ClientHello is incomplete: PASS once ``max_packets`` went by without it
    (the policy gives up on the flow), else None (wait for more packets)."""
    if view.index >= max_packets:
        return Decision(Action.PASS, policy, f"no complete ClientHello in {view.index} packets")
    return None


@dataclass(frozen=True, slots=True)
class FeatureRule:
    """One rule over a fingerprint feature: every condition given must hold.

    Attributes:
        name: Shown in the reason.
        feature: A feature name of ``quicreality.analysis.fingerprint`` (``client.`` and
            ``client.tls.`` may be left out: ``session_id_len``, ``ja4``).
        ops: Conditions: ``equals``, ``not_equals``, ``in`` (a list), ``contains`` (a member of a
            list feature, or a substring), ``matches`` (a regular expression), ``at_least``,
            ``at_most``.
    """

    name: str
    feature: str
    ops: tuple[tuple[str, Any], ...]

    def matches(self, features: Mapping[str, Any]) -> bool:
        """Whether every condition holds for ``features``."""
        v = _feature(features, self.feature)
        for op, want in self.ops:
            if op == "equals" and v != want:
                return False
            if op == "not_equals" and v == want:
                return False
            if op == "in" and v not in want:
                return False
            if op == "contains" and (v is None or want not in v):
                return False
            if op == "matches" and (v is None or not re.search(str(want), str(v))):
                return False
            if op == "at_least" and (not isinstance(v, (int, float)) or v < want):
                return False
            if op == "at_most" and (not isinstance(v, (int, float)) or v > want):
                return False
        return True

    def describe(self) -> str:
        """``name: feature op value, ...``."""
        conds = ", ".join(f"{op} {want!r}" for op, want in self.ops)
        return f"{self.name}: {self.feature} {conds}"


def _first_match(rules: Sequence[FeatureRule], hello: ParsedHello) -> FeatureRule | None:
    features = hello.features()
    return next((r for r in rules if r.matches(features)), None)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """Block hellos that match any rule over their fingerprint features.

    Attributes:
        rules: The rules (any match blocks).
        residual_s: 3-tuple residual block after a hit.
        max_packets: Give up (pass) without a complete hello after this many packets.
    """

    rules: tuple[FeatureRule, ...]
    residual_s: float = 0.0
    max_packets: int = 8
    name: str = "fingerprint"

    def judge(self, view: FlowView) -> Decision | None:
        """Block on the first matching rule once the hello is complete."""
        hello = view.hello
        if hello is None:
            return give_up_without_hello(view, self.max_packets, self.name)
        rule = _first_match(self.rules, hello)
        if rule is None:
            return Decision(Action.PASS, self.name, f"no rule matches (ja4 {hello.ja4})")
        return Decision(Action.BLOCK, self.name, f"rule {rule.describe()} (ja4 {hello.ja4})",
                        residual_s=self.residual_s)


@dataclass(frozen=True, slots=True)
class ActiveProbe:
    """Send the prober after flows that look suspicious; block the server if it is not target-like.

    Attributes:
        when: Rules that make a flow suspicious (any match); empty: every flow with a hello.
        ports: Server ports probed (empty: any).
        residual_s: 3-tuple block after a ``distinct`` verdict.
        timeout_s: How long the prober listens for answers per probe.
        delay_s: How long after the decision the probes are sent. A prober acts after the
            flow it probes (the GFW's replay probes of Shadowsocks came under a second to
            minutes after the connection: Alice et al., "How China Detects and Blocks
            Shadowsocks", IMC 2020); sent at once, a replay from a prober next to the server
            would outrun the client's own first flight across the link.
        max_packets: Give up without a complete hello after this many packets.
    """

    when: tuple[FeatureRule, ...] = ()
    ports: tuple[int, ...] = ()
    residual_s: float = 180.0
    timeout_s: float = 1.5
    delay_s: float = 1.0
    max_packets: int = 8
    name: str = "active-probe"

    def judge(self, view: FlowView) -> Decision | None:
        """PROBE a suspicious flow once its hello is complete."""
        hello = view.hello
        if hello is None:
            return give_up_without_hello(view, self.max_packets, self.name)
        if self.ports and view.packet.dport not in self.ports:
            return Decision(Action.PASS, self.name, f"port {view.packet.dport} not probed")
        if self.when:
            rule = _first_match(self.when, hello)
            if rule is None:
                return Decision(Action.PASS, self.name, "not suspicious (no `when` rule matches)")
            why = f"suspicious: {rule.describe()}"
        else:
            why = "every QUIC flow is probed"
        return Decision(Action.PROBE, self.name, f"{why}; probing {view.packet.dst}:"
                        f"{view.packet.dport} for sni {hello.sni!r}", residual_s=self.residual_s)
