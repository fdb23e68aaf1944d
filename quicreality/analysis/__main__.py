"""``python -m quicreality.analysis derive|notebooks ...`` (see :mod:`.derive`, :mod:`.notebooks`).

    python -m quicreality.analysis derive RUN_DIR [--force] [--jobs N]
    python -m quicreality.analysis notebooks [RUN_DIR] [--jobs N] [--only NAME] [--output DIR]

The other tools of this package are modules of their own: ``python -m
quicreality.analysis.falsealarm``, ``.ci``, ``.fingerprint``.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch the sub-command."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("\n".join(line.strip() for line in (__doc__ or "").splitlines()[2:4]))
        return 0 if args else 2
    if args[0] == "derive":
        from .derive import main as derive_main

        return derive_main(args[1:])
    if args[0] == "notebooks":
        from .notebooks import main as notebooks_main

        return notebooks_main(args[1:])
    print(f"unknown command {args[0]!r}; commands: derive, notebooks", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
