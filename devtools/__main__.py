"""``python -m devtools``: the local Lambda loop (see devtools/cli.py)."""

import sys

from devtools.cli import main

sys.exit(main())
