"""``python -m semstyle.studio``: the doodle studio (see :mod:`semstyle.studio.cli`)."""

import sys

from .cli import main

sys.exit(main())
