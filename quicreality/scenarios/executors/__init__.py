"""Executors of ``scenarios run``: where the units of a run (point × workload × rep) run.

* ``local`` (the default, :func:`quicreality.scenarios.runner.run_scenario`): this machine, one
  topology per scenario point, units in file order; needs no scheduler.
* ``dask`` (:mod:`.daskexec`): one Dask distributed task per unit, each needing the worker
  resource ``netlab=1``; a unit runs in its own process on its worker (:mod:`.unit`) and
  comes back as a compressed archive of its repetition folder. See docs/scale-out.md.
"""

from __future__ import annotations

__all__ = ["EXECUTORS"]

#: Names accepted by ``run --executor``.
EXECUTORS = ("local", "dask")
