"""Ctrl-C while a module is being imported: held back until the import is over.

A KeyboardInterrupt raised in the middle of importing numpy, torch or scipy leaves them half initialised, and the
next access fails with a RecursionError or an AttributeError traceback instead of the one line a later Ctrl-C
gives. The command line therefore does its slow imports inside :func:`deferred`, which records a SIGINT and raises
KeyboardInterrupt once the import has finished. Standard library only: it is imported before anything else.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


@contextmanager
def deferred():
    """Hold SIGINT back for the duration of the block, then raise KeyboardInterrupt if one arrived."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
