"""``python -m bench.nab``: see :mod:`bench.nab.run`."""

import sys

from bench.nab.run import main

if __name__ == "__main__":
    sys.exit(main())
