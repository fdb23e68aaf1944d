"""``python -m quicreality.interop.endpoint PEER``: one peer's ``run_endpoint.sh``.

Reads QIR's endpoint contract from the environment (see :mod:`.adapters`), runs the commands
:func:`~.adapters.plan` returns one after the other (stdin closed, output inherited) and exits
with the first non-zero status, or 0.  Exit 127 means the peer cannot do ``TESTCASE`` (the
reason goes to stderr); exit 2 means the environment itself is malformed.  A server's single
command replaces this process (``os.execvpe``), so signals reach the server directly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

from ..scenarios.peers.base import Unsupported
from .adapters import EXIT_UNSUPPORTED, Endpoint, plan


def main(argv: Sequence[str] | None = None) -> int:
    """Run the endpoint (see the module docstring); returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m quicreality.interop.endpoint PEER", file=sys.stderr)
        return 2
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
        rc = subprocess.run(list(cmd.argv), env=cmd.full_env(), cwd=cmd.cwd,
                            stdin=subprocess.DEVNULL, check=False).returncode
        if rc != 0:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
