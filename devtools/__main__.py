"""``python -m devtools``: the local Lambda loop (see devtools/local_lambda/cli.py)."""

import sys

from devtools.local_lambda.cli import main

sys.exit(main())
