"""``python -m quicreality.scenarios.emulator --config FILE.json``."""

import sys

from .relay import main

sys.exit(main())
