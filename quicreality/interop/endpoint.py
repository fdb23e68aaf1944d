"""``python -m quicreality.interop.endpoint PEER``: one peer's ``run_endpoint.sh``.

Reads QIR's endpoint contract from the environment (see :mod:`.adapters`), runs the commands
:func:`~.adapters.plan` returns one after the other (stdin closed, output inherited) and exits
with the first non-zero status, or 0 (each command's ``+ argv`` line on stderr is followed by
``= exit N after S s``).  Exit 127 means the peer cannot do ``TESTCASE`` (the
reason goes to stderr); exit 2 means the environment itself is malformed.  A server's single
command replaces this process (``os.execvpe``), so signals reach the server directly.

Check only (``QR_CHECK_ONLY=1``): the same contract is read and planned, nothing is run, and
the process exits right after the support check: 0 (supported), 127 (unsupported, the reason
on stderr) or 2 (malformed).  With ``QR_CHECK_TESTCASES`` (space-separated test case names)
every one of them is checked in this one process, ``TESTCASE`` taken from the list: one JSON
line per name on stdout, ``{"testcase", "status", "reason"}``, and exit 0.  The runner learns
the unsupported cells this way before it builds a link or starts a capture
(:mod:`.support`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

from ..scenarios.peers.base import Unsupported
from .adapters import EXIT_UNSUPPORTED, Endpoint, plan

#: Set to ``1``: check support and exit (see the module docstring).
CHECK_ONLY_ENV = "QR_CHECK_ONLY"
#: With :data:`CHECK_ONLY_ENV`: the test cases to check in one process.
CHECK_TESTCASES_ENV = "QR_CHECK_TESTCASES"


def check(peer: str, env: Mapping[str, str]) -> tuple[int, str]:
    """The support answer for ``env``'s ``TESTCASE``: ``(0, "")``, ``(127, reason)`` or
    ``(2, problem)``; plans the commands and runs none of them."""
    try:
        plan(Endpoint.from_env(peer, env))
    except Unsupported as e:
        return EXIT_UNSUPPORTED, str(e)
    except (ValueError, KeyError) as e:
        return 2, str(e)
    return 0, ""


def _check_main(peer: str) -> int:
    names = os.environ.get(CHECK_TESTCASES_ENV, "").split()
    if not names:
        rc, why = check(peer, os.environ)
        if rc == EXIT_UNSUPPORTED:
            print(f"unsupported: {why}", file=sys.stderr)
        elif rc:
            print(f"endpoint {peer}: {why}", file=sys.stderr)
        return rc
    for tc in names:
        rc, why = check(peer, {**os.environ, "TESTCASE": tc})
        print(json.dumps({"testcase": tc, "status": rc, "reason": why}), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the endpoint (see the module docstring); returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m quicreality.interop.endpoint PEER", file=sys.stderr)
        return 2
    if os.environ.get(CHECK_ONLY_ENV) == "1":
        return _check_main(args[0])
    try:
        ep = Endpoint.from_env(args[0], os.environ)
        cmds = plan(ep)
    except Unsupported as e:
        print(f"unsupported: {e}", file=sys.stderr)
        return EXIT_UNSUPPORTED
    except (ValueError, KeyError) as e:
        print(f"endpoint {args[0]}: {e}", file=sys.stderr)
        return 2
    print(f"endpoint {ep.peer} {ep.role} TESTCASE={ep.testcase}: {len(cmds)} command(s)",
          file=sys.stderr, flush=True)
    for cmd in cmds:
        cmd.prepare()
        print("+ " + " ".join(cmd.argv), file=sys.stderr, flush=True)
        if ep.role == "server" and len(cmds) == 1:
            if cmd.cwd is not None:
                os.chdir(cmd.cwd)
            os.execvpe(cmd.argv[0], list(cmd.argv), cmd.full_env())
        t0 = time.monotonic()
        rc = subprocess.run(list(cmd.argv), env=cmd.full_env(), cwd=cmd.cwd,
                            stdin=subprocess.DEVNULL, check=False).returncode
        print(f"= exit {rc} after {time.monotonic() - t0:.3f} s", file=sys.stderr, flush=True)
        if rc != 0:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
