"""Entry point for ``python -m rshift``."""

import sys

from rshift.cli import main

sys.exit(main())
