"""``python -m quicreality``: see :mod:`quicreality.cli`."""

import sys

from .cli import main

sys.exit(main())
