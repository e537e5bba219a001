"""``python -m benchmarks.cli``: the ``nt`` command line."""

import sys

from benchmarks.cli import main

sys.exit(main())
