"""``python -m chalice_loop``: the same as the ``chalice-loop`` command."""

import sys

from chalice_loop.cli import main

sys.exit(main())
