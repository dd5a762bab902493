"""``python -m semstyle`` and the ``semstyle`` console script.

The command line is imported inside :func:`run`, with Ctrl-C held back until the import is over, so that a Ctrl-C
while it is still loading ends like any later one: one line, exit 130, no traceback.
"""

import sys

from .interrupts import deferred


def run() -> int:
    try:
        with deferred():
            from .cli import main
    except KeyboardInterrupt:
        print("semstyle: interrupted", file=sys.stderr)
        return 130
    return main()


if __name__ == "__main__":
    sys.exit(run())
