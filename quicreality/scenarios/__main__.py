"""``python -m quicreality.scenarios <command> [args]``.

Commands: ``run`` (run a scenario), ``list`` (the catalog), ``clean`` (remove
leftovers of crashed runs).  To add one, add an entry to :data:`COMMANDS`:
``name: ("package.module:function", "one line of help")``.  The module is
imported only when its command runs; the function takes the remaining argv
and returns the exit status.  (A plain callable is accepted as a value too.)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

CommandEntry = tuple[str, str] | Callable[[list[str]], int]

COMMANDS: dict[str, CommandEntry] = {
    "run": ("quicreality.scenarios.runner:main_run",
            ("run a scenario: run NAME|PATH [--reps N] [--seed S] [--results DIR] [--quick] "
             "[--only WORKLOAD]")),
    "list": ("quicreality.scenarios.runner:main_list", "list the scenario catalog"),
    "clean": ("quicreality.scenarios.cleanup:main_clean",
              "remove namespaces/processes/temp dirs left by crashed runs"),
    "report": ("quicreality.analysis.cli:main_report",
               ("regression report of a run vs its baseline: report RUN_DIR [--baseline FILE] "
                "(exit 1 on a regression)")),
    "baseline": ("quicreality.analysis.cli:main_baseline",
                 "record a baseline: baseline update RUN_DIR [RUN_DIR ...] [--out FILE]"),
}
_COMMANDS = COMMANDS  # the name earlier code used


def _resolve(entry: CommandEntry) -> Callable[[list[str]], Any]:
    if callable(entry):
        return entry
    module, _, func = entry[0].partition(":")
    return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]


def usage() -> str:
    """The top-level usage text."""
    lines = ["usage: python -m quicreality.scenarios {" + ",".join(COMMANDS) + "} ...", ""]
    for name, entry in COMMANDS.items():
        helptext = entry[1] if isinstance(entry, tuple) else (entry.__doc__ or "").split("\n")[0]
        lines.append(f"  {name:<8} {helptext}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a sub-command."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        print(usage(), file=sys.stderr if not args or args[0] not in ("-h", "--help")
              else sys.stdout)
        return 0 if args and args[0] in ("-h", "--help") else 2
    return int(_resolve(COMMANDS[args[0]])(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
