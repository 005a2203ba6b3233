"""``python -m ifl.cli``: the command line of :func:`ifl.cli.main`."""

import sys

from ifl.cli import main

sys.exit(main())
