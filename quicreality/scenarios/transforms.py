"""Command-line transforms of a scenario, replayed the same way by every executor.

``run --quick``, ``--only``, ``--reps`` and ``--max-size``/``--max-seconds`` each return a copy
of the :class:`~.catalog.Scenario` and append an entry to its ``transforms``. A sweep's points
(:meth:`~.catalog.Scenario.points`) and a Dask unit (:func:`.executors.unit.scenario_of`) replay
that list with :func:`apply_transform`, so a point is the same scenario under every executor.

``("cap", size_bytes, seconds)`` (``--max-size``/``--max-seconds``) caps every workload's
transfer size and test duration, like ``[quick]``'s ``max_size``/``max_seconds`` but keeping the
scenario's points, repetitions and link check: a smaller version of the same sweep.
``("no-link-check",)`` (``--no-link-check``) turns the link check off (``[link_check]
enabled = false``), for a loaded host where the probes fail though the emulator is configured
right; the manifests record ``link_check.enabled = false``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .catalog import Scenario

__all__ = ["apply_transform", "capped", "without_link_check"]


def capped(sc: Scenario, size_bytes: int | None, seconds: float | None) -> Scenario:
    """A copy where no workload transfers more than ``size_bytes`` or runs longer than
    ``seconds`` (None: no cap). An explicit ``timeout_s`` shrinks with the size (at least 60 s),
    as under ``--quick``; a derived one follows the new size by itself."""
    if size_bytes is not None and size_bytes <= 0:
        raise ValueError("max size must be > 0")
    if seconds is not None and seconds <= 0:
        raise ValueError("max seconds must be > 0")
    out = []
    for w in sc.workloads:
        size = w.size_bytes
        if size is not None and size_bytes is not None:
            size = min(size, size_bytes)
        secs = w.seconds
        if secs is not None and seconds is not None:
            secs = min(secs, seconds)
        timeout = w.timeout_s
        if timeout is not None and w.size_bytes and size:
            timeout = min(timeout, max(60.0, timeout * size / w.size_bytes))
        out.append(replace(w, size_bytes=size, seconds=secs, timeout_s=timeout))
    return replace(sc, workloads=tuple(out),
                   transforms=(*sc.transforms, ("cap", size_bytes, seconds)))


def without_link_check(sc: Scenario) -> Scenario:
    """A copy with the link check turned off."""
    return replace(sc, link_check=replace(sc.link_check, enabled=False),
                   transforms=(*sc.transforms, ("no-link-check",)))


def apply_transform(sc: Scenario, op: tuple[Any, ...]) -> Scenario:
    """``sc`` with one recorded transform applied (``quick``, ``only``, ``reps``, ``cap``,
    ``no-link-check``).

    Raises:
        ValueError: An unknown transform.
    """
    if op[0] == "quick":
        return sc.quickened()
    if op[0] == "only":
        return sc.only(list(op[1]))
    if op[0] == "reps":
        return sc.with_reps(int(op[1]))
    if op[0] == "cap":
        return capped(sc, None if op[1] is None else int(op[1]),
                      None if op[2] is None else float(op[2]))
    if op[0] == "no-link-check":
        return without_link_check(sc)
    raise ValueError(f"unknown scenario transform {op[0]!r}")
