"""QUIC versions and how two endpoints agree on one (RFC 9000 §6, RFC 9368, RFC 9369).

Pure decisions, no connection state: the names on the command line (``v1,v2``), which versions
are compatible (RFC 9369 §4: v1 and v2 share a first flight), the server's choice of a compatible
version (RFC 9368 §2.3), the client's choice after a Version Negotiation packet (RFC 9368 §2.1)
and the downgrade checks on version_information (RFC 9368 §4). Each check returns a
:class:`VersionVerdict` with its reason; the connection component
(:mod:`quicreality.quic.connection.versions`) acts on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .packet import QUIC_VERSION_1, QUIC_VERSION_2
from .transport_params import VersionInformation, is_reserved_version

#: Command-line names of the versions we speak.
VERSION_NAMES: dict[str, int] = {"v1": QUIC_VERSION_1, "v2": QUIC_VERSION_2}
#: Pairs of versions whose first flights are compatible (RFC 9369 §4: v1 <-> v2 both ways).
COMPATIBLE: frozenset[tuple[int, int]] = frozenset(
    {(QUIC_VERSION_1, QUIC_VERSION_2), (QUIC_VERSION_2, QUIC_VERSION_1)})


def parse_versions(text: str) -> tuple[int, ...]:
    """``"v1,v2"`` (or hex, ``0x6b3343cf``) to version numbers, in the given order.

    Raises:
        ValueError: an empty list, an unknown name or a repeated version.
    """
    out: list[int] = []
    for part in (p.strip().lower() for p in text.split(",")):
        if part in VERSION_NAMES:
            version = VERSION_NAMES[part]
        else:
            try:
                version = int(part, 16)
            except ValueError:
                raise ValueError(f"unknown QUIC version {part!r} (choose from "
                                 f"{', '.join(VERSION_NAMES)}, or a hex number)") from None
        if version in out:
            raise ValueError(f"QUIC version {part!r} is listed twice")
        out.append(version)
    if not out:
        raise ValueError("no QUIC version given")
    return tuple(out)


def version_name(version: int) -> str:
    """``v1``/``v2`` for the versions we speak, else ``0x........``."""
    for name, value in VERSION_NAMES.items():
        if value == version:
            return name
    return f"{version:#010x}"


def compatible(original: int, other: int) -> bool:
    """True when a first flight of ``original`` can be converted to ``other`` (RFC 9368 §2.2)."""
    return original == other or (original, other) in COMPATIBLE


@dataclass(frozen=True, slots=True)
class VersionVerdict:
    """A version decision: the version (when one was chosen) or why none (``reason``).

    ``ok`` is False for a downgrade or mismatch the connection must close on with
    VERSION_NEGOTIATION_ERROR (RFC 9368 §4); ``reason`` is then the connection's close reason.
    """

    ok: bool
    version: int | None
    reason: str


def server_choice(original: int, client: VersionInformation | None,
                  preference: Iterable[int]) -> VersionVerdict:
    """The server's version for a client whose first flight came in ``original`` (RFC 9368 §2.3,
    §4).

    The client's Chosen Version must be ``original``; the server takes the first version of its
    own ``preference`` that the client lists and that is compatible with ``original``. Without
    version_information the client speaks ``original`` only.
    """
    if client is None:
        return VersionVerdict(True, original, "client sent no version_information")
    if client.chosen_version != original:
        return VersionVerdict(False, None, (
            f"client's chosen version {version_name(client.chosen_version)} is not the version "
            f"of its first Initial {version_name(original)}"))
    for version in preference:
        if version in client.available_versions and compatible(original, version):
            return VersionVerdict(True, version, f"compatible: {version_name(original)} -> "
                                                 f"{version_name(version)}")
    return VersionVerdict(True, original, "no preferred compatible version offered")


def client_choice_after_vn(ours: Iterable[int], offered: Iterable[int]) -> int | None:
    """The version a client starts again with after a Version Negotiation packet listing
    ``offered``: its most preferred one the server lists (RFC 9368 §2.1); None if there is none.
    Reserved versions (``0x?a?a?a?a``, RFC 9000 §15) never count."""
    listed = set(offered)
    return next((v for v in ours if v in listed and not is_reserved_version(v)), None)


def check_server_information(server: VersionInformation | None, *, negotiated: int,
                             after_vn: bool, ours: tuple[int, ...]) -> VersionVerdict:
    """The client's downgrade checks on the server's version_information (RFC 9368 §4).

    The server's Chosen Version must be the version the connection uses. After a Version
    Negotiation packet, the client must have picked the same version had that packet listed the
    server's Available Versions (a forged VN is caught here). A server without version_information
    is accepted for QUIC v1 only: a v1 server that predates RFC 9368 has nothing to protect a VN
    with (RFC 9368 §4 leaves it unprotected); any other version must send it (RFC 9369 §4).
    """
    if server is None:
        if negotiated == QUIC_VERSION_1:
            return VersionVerdict(True, negotiated, "v1 server without version_information")
        return VersionVerdict(False, None, (
            f"server sent no version_information ({version_name(negotiated)})"))
    if server.chosen_version != negotiated:
        return VersionVerdict(False, None, (
            f"server's chosen version {version_name(server.chosen_version)} is not the "
            f"negotiated version {version_name(negotiated)}"))
    if after_vn:
        would_pick = client_choice_after_vn(ours, server.available_versions)
        if would_pick != negotiated:
            return VersionVerdict(False, None, (
                "downgrade: with the server's versions "
                f"{','.join(version_name(v) for v in server.available_versions)} we would have "
                f"chosen {version_name(would_pick) if would_pick else 'none'}, not "
                f"{version_name(negotiated)}"))
    return VersionVerdict(True, negotiated, "version_information consistent")
