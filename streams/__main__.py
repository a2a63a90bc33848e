"""``python -m streams`` is the ``tradewatch`` command."""

import sys

from streams.cli import main

sys.exit(main())
