"""The netem backend: a probe for ``sch_netem`` and pure ``tc`` argv generation.

Theory of operation
-------------------
Where the kernel has ``sch_netem``, each end of a veth pair gets, on egress::

    root 1: netem  limit 1000000 delay D [J] loss ... duplicate ... corrupt ...
      parent 1:1 handle 10: tbf rate R burst B limit L      (only if rate_mbit is set)

so the client's egress carries ``to_server`` and the server's ``to_client``.
netem is the delay line (its ``limit`` is made huge so it never drops: the
bounded queue is the tbf child, a drop-tail queue in bytes).  Mapping notes:

* ``queue_packets`` → tbf ``limit`` of ``queue_packets × (mtu + 14)`` bytes
  (tbf only knows bytes; link-layer bytes are counted on veth).
* ``loss`` and ``gilbert_elliott`` together → one ``loss gemodel`` whose
  per-state loss folds in the independent random loss:
  ``1-(1-loss)(1-loss_state)`` (the same distribution; netem takes one model).
* jitter with ``reorder=False`` → netem ``rate`` is also set (the link rate, or
  10 Gbit/s), which makes netem compute each packet's send time from the
  previous one so ``tfifo`` keeps FIFO order.  With ``reorder=True`` no netem
  rate is set and ``tfifo`` reorders by send time.
* ``corrupt_fix_checksum`` has no netem equivalent → :class:`NetemUnsupported`.
* The blackhole schedule is not a qdisc feature: :func:`blackhole_schedule`
  returns timed ``tc qdisc change`` commands (``loss 100%`` on/off) for the
  runner to execute.

Every function here except :func:`probe_netem` is pure and unit-tested without root.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from .model import GilbertElliott, Impairment

__all__ = [
    "NetemProbe",
    "NetemUnsupported",
    "blackhole_schedule",
    "netem_args",
    "probe_netem",
    "qdisc_argvs",
    "tbf_args",
    "teardown_argv",
]

NETEM_LIMIT = 1_000_000
_NO_RATE_FIFO = "10gbit"


class NetemUnsupported(ValueError):
    """The model uses a feature netem cannot express (message names it)."""


@dataclass(frozen=True, slots=True)
class NetemProbe:
    """Result of :func:`probe_netem`.

    Attributes:
        available: Whether a netem qdisc could be created.
        detail: tc's message (e.g. ``Error: Specified qdisc kind is unknown.``) or "ok".
    """

    available: bool
    detail: str


def _pct(p: float) -> str:
    return f"{p * 100:.6g}%"


def _ms(v: float) -> str:
    return f"{v:.6g}ms"


def _rate(mbit: float) -> str:
    return f"{mbit * 1000:.6g}kbit"


def netem_args(imp: Impairment, *, black: bool = False) -> list[str]:
    """The netem option words for one direction (after ``netem``).

    Args:
        imp: The impairment.
        black: If True, ``loss 100%`` replaces the loss model (blackhole "off" phase).

    Raises:
        NetemUnsupported: For ``corrupt_fix_checksum``, ``drop_packets``, ``loss_max_burst``
            and ``ecn_mark_threshold_ms``.
    """
    if imp.corrupt_fix_checksum:
        raise NetemUnsupported("corrupt_fix_checksum: netem cannot keep checksums valid")
    if imp.drop_packets:
        raise NetemUnsupported("drop_packets: netem cannot drop packets by number")
    if imp.loss_max_burst is not None:
        raise NetemUnsupported("loss_max_burst: netem cannot cap loss bursts")
    if imp.ecn_mark_threshold_ms is not None:
        raise NetemUnsupported("ecn_mark_threshold_ms: netem has no queue-delay CE marking")
    args = ["limit", str(NETEM_LIMIT)]
    if imp.delay_ms or imp.jitter_ms:
        args += ["delay", _ms(imp.delay_ms)]
        if imp.jitter_ms:
            args.append(_ms(imp.jitter_ms))  # netem default: uniform jitter, as ours
    if black:
        args += ["loss", "random", "100%"]
    elif imp.gilbert_elliott is not None:
        ge: GilbertElliott = imp.gilbert_elliott
        keep = 1.0 - imp.loss
        bad = 1.0 - keep * (1.0 - ge.loss_bad)
        good = 1.0 - keep * (1.0 - ge.loss_good)
        args += ["loss", "gemodel", _pct(ge.p), _pct(ge.r), _pct(bad), _pct(good)]
    elif imp.loss:
        args += ["loss", "random", _pct(imp.loss)]
    if imp.duplicate:
        args += ["duplicate", _pct(imp.duplicate)]
    if imp.corrupt:
        args += ["corrupt", _pct(imp.corrupt)]
    if imp.jitter_ms and not imp.reorder:
        args += ["rate", _rate(imp.rate_mbit) if imp.rate_mbit else _NO_RATE_FIFO]
    return args


def tbf_args(imp: Impairment, *, mtu: int = 1500) -> list[str] | None:
    """The tbf option words for the rate/queue stage, or None without a rate."""
    if imp.rate_mbit is None:
        return None
    frame = mtu + 14
    if imp.queue_bytes is not None:
        limit = imp.queue_bytes
    else:
        limit = imp.queue_limit_packets * frame  # type: ignore[operator]
    # burst: at least one frame, and enough for the kernel timer at this rate (≈1 ms).
    burst = max(2 * frame, int(imp.rate_mbit * 1e6 / 8 / 1000))
    return ["rate", _rate(imp.rate_mbit), "burst", str(burst), "limit", str(limit)]


def qdisc_argvs(dev: str, imp: Impairment, *, mtu: int = 1500) -> list[list[str]]:
    """``tc`` argv lists that install ``imp`` on the egress of ``dev``.

    Run them inside the namespace that owns ``dev`` (e.g. wrapped by
    ``Topology.exec_argv``).
    """
    argvs = [["tc", "qdisc", "replace", "dev", dev, "root", "handle", "1:", "netem",
              *netem_args(imp)]]
    tbf = tbf_args(imp, mtu=mtu)
    if tbf is not None:
        argvs.append(["tc", "qdisc", "replace", "dev", dev, "parent", "1:1", "handle", "10:",
                      "tbf", *tbf])
    return argvs


def teardown_argv(dev: str) -> list[str]:
    """``tc`` argv removing our root qdisc from ``dev``."""
    return ["tc", "qdisc", "del", "dev", dev, "root"]


def blackhole_schedule(dev: str, imp: Impairment) -> list[tuple[float, list[str]]]:
    """Timed ``tc qdisc change`` commands implementing ``imp.blackhole`` with netem.

    Returns:
        ``[(seconds after the origin, argv), ...]`` in time order; empty without
        a blackhole.  The runner executes each argv at its time.
    """
    if imp.blackhole is None:
        return []
    out: list[tuple[float, list[str]]] = []
    base = ["tc", "qdisc", "change", "dev", dev, "root", "handle", "1:", "netem"]
    for start, end in imp.blackhole.windows():
        out.append((start, base + netem_args(imp, black=True)))
        out.append((end, base + netem_args(imp)))
    return out


def probe_netem(timeout: float = 5.0) -> NetemProbe:
    """Check whether this kernel has ``sch_netem``.

    Creates a throwaway namespace ``qr-probe-<pid>`` holding a veth pair, tries
    to add a netem qdisc, and always deletes the namespace.  Needs root.
    """
    ns = f"qr-probe-{os.getpid()}"

    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    try:
        r = run(["ip", "netns", "add", ns])
        if r.returncode != 0:
            return NetemProbe(False, f"cannot create a netns: {r.stderr.strip()}")
        try:
            r = run(["ip", "-n", ns, "link", "add", "qrp0", "type", "veth", "peer", "name", "qrp1"])
            if r.returncode != 0:
                return NetemProbe(False, f"cannot create a veth: {r.stderr.strip()}")
            run(["ip", "-n", ns, "link", "set", "qrp0", "up"])
            r = run(["tc", "-n", ns, "qdisc", "add", "dev", "qrp0", "root", "netem", "delay", "1ms"])
            if r.returncode != 0:
                return NetemProbe(False, r.stderr.strip() or f"tc exit {r.returncode}")
            return NetemProbe(True, "ok")
        finally:
            run(["ip", "netns", "del", ns])
    except (OSError, subprocess.TimeoutExpired) as e:
        return NetemProbe(False, f"probe failed: {e}")

