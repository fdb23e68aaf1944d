"""Reloading a REALITY listener's configuration (SIGHUP): what changes, who stays (sans-IO).

:func:`plan_reload` compares the configuration in force with a freshly validated one and the
short IDs of the connections that are up, and returns a :class:`ReloadPlan`: the configuration
to swap in, the connections to close (with the reason each is given), and one line per change
for the log. The edge (:meth:`quicreality.aio.reality_server.RealityServer.reload`) carries it
out: the gate judges every new ClientHello by the new configuration at once (short IDs, server
names, versions, time window); an accepted connection stays up while its short ID is still
configured.

What a reload cannot change on a running listener is kept from the old configuration and said
in :attr:`ReloadPlan.kept`: the gate's table limits (sized to the descriptors at start), the
fallback target (its sockets are open), and the private key (accepted connections were
authenticated with it; a new key needs a restart, so that no client is judged by two keys).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from .config import RealityServerConfig
from .keys import short_id_fingerprint

#: The reason phrase of a connection closed because its short ID was removed.
REVOKED_REASON = "REALITY short ID removed from the configuration (reloaded)"


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """What a reload does (see the module docstring)."""

    config: RealityServerConfig
    close: tuple[tuple[Hashable, str], ...]
    changes: tuple[str, ...]
    kept: tuple[str, ...]

    def describe(self) -> str:
        """One log line."""
        parts = list(self.changes) or ["no change to [reality]"]
        if self.close:
            parts.append(f"{len(self.close)} connection(s) closed: short ID removed")
        parts += [f"kept: {k}" for k in self.kept]
        return "; ".join(parts)


def _ids(ids: Iterable[bytes]) -> str:
    return ", ".join(sorted(short_id_fingerprint(i) for i in ids)) or "none"


def plan_reload(old: RealityServerConfig, new: RealityServerConfig,
                live: Iterable[tuple[Hashable, bytes | None]]) -> ReloadPlan:
    """The plan for swapping ``new`` in; ``live`` is ``(connection key, its short ID)``."""
    kept: list[str] = []
    swapped = dataclasses.replace(new, limits=old.limits)
    if new.limits != old.limits:
        kept.append("gate limits (restart to resize the tables)")
    if new.target != old.target:
        swapped = dataclasses.replace(swapped, target=old.target)
        kept.append(f"target {old.target[0]}:{old.target[1]} (restart to change it)")
    if new.private_key != old.private_key:
        swapped = dataclasses.replace(swapped, private_key=old.private_key)
        kept.append("private_key (restart to change the key)")
    changes: list[str] = []
    added, removed = new.short_ids - old.short_ids, old.short_ids - new.short_ids
    if added:
        changes.append(f"short IDs added: {_ids(added)}")
    if removed:
        changes.append(f"short IDs removed: {_ids(removed)}")
    if new.server_names != old.server_names:
        changes.append("server names: " + ", ".join(sorted(new.server_names)))
    for name in ("max_time_diff_ms", "min_client_ver", "max_client_ver", "shape_ttl_s",
                 "close_target"):
        if getattr(new, name) != getattr(old, name):
            changes.append(f"{name}: {getattr(new, name)}")
    close = tuple((key, REVOKED_REASON) for key, short_id in live
                  if short_id is not None and short_id not in new.short_ids)
    return ReloadPlan(swapped, close, tuple(changes), tuple(kept))
