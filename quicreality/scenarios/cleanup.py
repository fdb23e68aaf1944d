"""``python -m quicreality.scenarios clean``: remove leftovers of crashed runs.

Only things this project created are touched, recognised by name:

* namespaces ``qr-<6 hex>-(client|server|target)`` and ``qr-probe-<pid>``;
* every process inside those namespaces (``ip netns pids``);
* emulator processes (``-m quicreality.scenarios.emulator ... --tag qr-<id>``);
* temp dirs ``$TMPDIR/qr-<6 hex>-*`` of runs that no longer have namespaces;
* the owner marker ``/run/quicreality/qr-<id>.owner``.

A run whose owner process (pid in the marker) is still alive is skipped unless
``force`` is set, so ``clean`` does not break a concurrent run.

:func:`require_net_admin` is the root check: without root or CAP_NET_ADMIN it
prints one line and exits with status 2.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

from .procutil import kill_pids
from .topology import OWNER_DIR

__all__ = ["CleanReport", "clean", "has_net_admin", "main_clean", "require_net_admin"]

_NS_RE = re.compile(r"^qr-(?P<id>[0-9a-f]{6})-(client|server|target)$|^qr-probe-\d+$")
_TMP_RE = re.compile(r"^qr-(?P<id>[0-9a-f]{6})-")
_CAP_NET_ADMIN = 12


def has_net_admin() -> bool:
    """Whether this process is root or has CAP_NET_ADMIN in its effective set."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_NET_ADMIN & 1)
    except OSError:
        pass
    return False


def require_net_admin(what: str = "this command") -> None:
    """Exit with status 2 and one clear line unless root/CAP_NET_ADMIN is available."""
    if not has_net_admin():
        print(f"quicreality: {what} needs root or CAP_NET_ADMIN (network namespaces, TUN, tc); "
              "run it with sudo", file=sys.stderr)
        sys.exit(2)


@dataclass(frozen=True, slots=True)
class CleanReport:
    """What :func:`clean` found and removed.

    Attributes:
        namespaces: Namespaces deleted.
        pids: Processes killed.
        tempdirs: Temp dirs removed.
        skipped_runs: Run ids left alone because their owner is alive.
        errors: Commands that failed.
    """

    namespaces: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    tempdirs: list[str] = field(default_factory=list)
    skipped_runs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _ns_list() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _emulator_pids() -> dict[int, str]:
    """pid -> tag of running emulator processes of this project."""
    found: dict[int, str] = {}
    for d in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"quicreality.scenarios.emulator" not in argv or b"--tag" not in argv:
            continue
        i = argv.index(b"--tag")
        tag = argv[i + 1].decode(errors="replace") if i + 1 < len(argv) else ""
        if re.fullmatch(r"qr-[0-9a-f]{6}", tag):
            found[int(d.split("/")[2])] = tag
    return found


def _owner_alive(run_id: str) -> bool:
    path = os.path.join(OWNER_DIR, f"qr-{run_id}.owner")
    try:
        with open(path) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return False
    if pid == os.getpid():
        return False
    return os.path.exists(f"/proc/{pid}")


def clean(run_id: str | None = None, *, force: bool = False, dry_run: bool = False) -> CleanReport:
    """Find and remove this project's leftovers.

    Args:
        run_id: Only this run (6 hex digits); all runs if None.
        force: Also remove runs whose owner process is alive.
        dry_run: Report without removing anything.
    """
    rep = CleanReport()
    namespaces = []
    for ns in _ns_list():
        m = _NS_RE.match(ns)
        if not m:
            continue
        rid = m.group("id")
        if run_id is not None and rid != run_id:
            continue
        if rid and not force and _owner_alive(rid):
            if rid not in rep.skipped_runs:
                rep.skipped_runs.append(rid)
            continue
        namespaces.append(ns)
    emus = {pid: tag for pid, tag in _emulator_pids().items()
            if (run_id is None or tag == f"qr-{run_id}")
            and (force or (tag[3:] not in rep.skipped_runs and not _owner_alive(tag[3:])))}
    pids = list(emus)
    for ns in namespaces:
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                             check=False).stdout
        pids += [int(x) for x in out.split() if x.isdigit()]
    pids = sorted(set(pids) - {os.getpid()})
    rep.pids.extend(pids)
    rep.namespaces.extend(namespaces)
    if not dry_run:
        kill_pids(pids)
        for ns in namespaces:
            r = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True, check=False)
            if r.returncode != 0:
                rep.errors.append(f"ip netns del {ns}: {r.stderr.strip()}")
    live = {m.group("id") for ns in _ns_list() if (m := _NS_RE.match(ns)) and m.group("id")}
    for path in glob.glob(os.path.join(tempfile.gettempdir(), "qr-*")):
        m = _TMP_RE.match(os.path.basename(path))
        if not m or not os.path.isdir(path):
            continue
        rid = m.group("id")
        if (run_id is not None and rid != run_id) or rid in live or rid in rep.skipped_runs:
            continue
        if not force and _owner_alive(rid):
            continue
        rep.tempdirs.append(path)
        if not dry_run:
            shutil.rmtree(path, ignore_errors=True)
    for path in glob.glob(os.path.join(OWNER_DIR, "qr-*.owner")):
        rid = os.path.basename(path)[3:9]
        if ((run_id is None or rid == run_id) and rid not in rep.skipped_runs and not dry_run
                and (force or not _owner_alive(rid))):
            os.unlink(path)
    return rep


def main_clean(argv: list[str] | None = None) -> int:
    """CLI of ``python -m quicreality.scenarios clean [--run-id ID] [--force] [--dry-run]``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m quicreality.scenarios clean",
                                 description="remove namespaces, processes and temp dirs left by "
                                             "crashed quicreality runs (qr-* only)")
    ap.add_argument("--run-id", help="only this run (6 hex digits)")
    ap.add_argument("--force", action="store_true", help="also runs whose owner is alive")
    ap.add_argument("--dry-run", action="store_true", help="only report")
    args = ap.parse_args(argv)
    require_net_admin("`clean`")
    rep = clean(args.run_id, force=args.force, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(f"clean: {verb} {len(rep.namespaces)} namespaces, {len(rep.pids)} processes, "
          f"{len(rep.tempdirs)} temp dirs"
          + (f"; skipped live runs {', '.join(rep.skipped_runs)}" if rep.skipped_runs else ""))
    for ns in rep.namespaces:
        print(f"  netns {ns}")
    for e in rep.errors:
        print(f"  error: {e}", file=sys.stderr)
    return 1 if rep.errors else 0
