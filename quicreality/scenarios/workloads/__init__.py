"""Workloads: run one repetition of a workload inside a built topology.

Theory of operation
-------------------
The runner (:mod:`~quicreality.scenarios.runner`) owns the topology and the loop over workloads
and repetitions; for each repetition it builds a :class:`~.context.RepContext` and calls
:func:`run_rep`, which looks the workload's ``kind`` up in a registry (like
:mod:`~quicreality.scenarios.peers`) and runs it:

* ``download`` (:mod:`.download`): HTTP/3 GET of one file, plain or through REALITY;
* ``iperf3`` (:mod:`.iperf3`): TCP directly between the namespaces (headers-only captures);
* ``fallback`` (:mod:`.fallback`): a client without credentials must reach the target;
* ``relay-iperf3`` (:mod:`.relay_iperf3`): iperf3 through the REALITY relay;
* ``censored`` (:mod:`.censored`): a download through the scenario's on-path ``[censor]``;
* ``chain`` (:mod:`.chain`): iperf3 through 0, 1 or 2 REALITY relays over two impaired links
  (the chain topology of a scenario with ``[link2]``).

What the kinds share is in :mod:`.context` (the repetition context and outcome, log tails, key
logs, peer commands), :mod:`.measures` (qlog and link-loss metrics) and :mod:`.reality` (feature
probing, REALITY material, the target and our listener).

Anything that goes wrong inside a repetition (a peer that crashes, hangs past its timeout, is
unsupported or missing, a wrong file) becomes a failed
:class:`~quicreality.scenarios.results.Check` with the reason and the stderr kept; only Ctrl-C
and SIGTERM propagate.

>>> from quicreality.scenarios.workloads import workload_kinds
>>> sorted(workload_kinds())
['censored', 'chain', 'download', 'fallback', 'iperf3', 'relay-iperf3']
"""

from __future__ import annotations

from ..peers.base import Unsupported
from ..peers.paths import PeerNotInstalled
from ..peers.process import PeerFailed
from ..results import Check
from . import censored, chain, download, fallback, iperf3, relay_iperf3
from .context import (
    Assets,
    Metric,
    RepContext,
    RepOutcome,
    WorkloadSpec,
    finish_keys,
    merge_client_first,
    tail,
)

__all__ = [
    "Assets",
    "Metric",
    "RepContext",
    "RepOutcome",
    "WorkloadSpec",
    "finish_keys",
    "get_workload",
    "merge_client_first",
    "register_workload",
    "run_rep",
    "tail",
    "workload_kinds",
]

_REGISTRY: dict[str, WorkloadSpec] = {}


def register_workload(spec: WorkloadSpec) -> None:
    """Add (or replace) a workload kind under ``spec.kind``."""
    _REGISTRY[spec.kind] = spec


def get_workload(kind: str) -> WorkloadSpec:
    """The workload kind registered as ``kind``; ``KeyError`` lists the known kinds."""
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise KeyError(f"unknown workload kind {kind!r}; known: {', '.join(sorted(_REGISTRY))}"
                       ) from None


def workload_kinds() -> list[str]:
    """Registered workload kinds."""
    return list(_REGISTRY)


def run_rep(ctx: RepContext) -> RepOutcome:
    """Run one repetition; every failure inside becomes a failed check (Ctrl-C propagates)."""
    try:
        return get_workload(ctx.workload.kind).run(ctx)
    except Unsupported as e:
        return RepOutcome(Check(False, f"unsupported: {e}", {"unsupported": True}))
    except PeerNotInstalled as e:
        return RepOutcome(Check(False, str(e), {"not_installed": e.name}))
    except PeerFailed as e:
        lines = str(e).splitlines()
        return RepOutcome(Check(False, lines[0], {"peer": "\n".join(lines[1:])}))
    except (OSError, RuntimeError, ValueError) as e:
        return RepOutcome(Check(False, f"{type(e).__name__}: {e}", {}))
    finally:
        ctx.close()


for _mod in (download, iperf3, fallback, relay_iperf3, censored, chain):
    register_workload(_mod.SPEC)
