"""``python -m quicreality``: see :mod:`quicreality.cli`.

The process's garbage collector is tuned first (:mod:`quicreality.aio.gc_policy`; ``QR_GC=default``
keeps CPython's settings); :func:`quicreality.cli.main` called in-process (the tests) is not."""

import sys

from .aio import gc_policy
from .cli import main

gc_policy.tune()
sys.exit(main())
