"""``python -m tests.fakes.discord``: the fake in its own process (see ``cli.py``)."""

import sys

from .cli import main

sys.exit(main())
