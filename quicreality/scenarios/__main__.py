"""``python -m quicreality.scenarios <command>``.

Commands so far: ``clean`` (remove leftovers of crashed runs).  The runner
adds ``run`` here; register new commands in ``_COMMANDS``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from .cleanup import main_clean

_COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "clean": main_clean,
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a sub-command."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help") or args[0] not in _COMMANDS:
        print("usage: python -m quicreality.scenarios {" + ",".join(_COMMANDS) + "} ...",
              file=sys.stderr)
        return 0 if args and args[0] in ("-h", "--help") else 2
    return _COMMANDS[args[0]](args[1:])


if __name__ == "__main__":
    sys.exit(main())
