"""The registry of fuzz targets, by name (:data:`TARGETS`); see :mod:`quicreality.fuzz`."""

from __future__ import annotations

from .harness import Target

__all__ = ["TARGETS", "get"]


def _all() -> dict[str, Target]:
    from . import targets_analysis, targets_app, targets_quic, targets_tls

    out: dict[str, Target] = {}
    for mod in (targets_quic, targets_tls, targets_app, targets_analysis):
        for t in mod.TARGETS:
            out[t.name] = t
    return out


TARGETS: dict[str, Target] = _all()


def get(name: str) -> Target:
    """The target called ``name``; ``KeyError`` lists the known ones."""
    try:
        return TARGETS[name]
    except KeyError:
        raise KeyError(f"unknown fuzz target {name!r}; known: {', '.join(TARGETS)}") from None
