"""Keep freed feature maps in the process, so the next step does not pay the kernel to zero them again.

A VGG-19 pass at 512x384 allocates and frees a dozen 50 MB activations and gradients (64 channels at full size).
glibc's ``malloc`` serves blocks over its mmap threshold (at most 32 MB) with a fresh ``mmap`` and returns them to
the kernel on ``free``, so every step page-faults and zeroes them again: 92 000 faults and 13 % of a fp32 pass at
512 px on a 2-core AMD EPYC (docs/benchmarks.md, *Memory the kernel zeroes every step*). PyTorch's CPU allocator
has no cache of its own, and ``THP_MEM_ALLOC_ENABLE=1`` (huge pages) cut the faults but not the zeroing.

:func:`keep_freed_memory` tells glibc to serve every block from its heap and to keep freed memory there. The cost:
the process keeps its peak memory until it exits, which a style-transfer run reaches on its first step anyway.
It changes the whole process, so it runs where semstyle's heavy CPU work starts (building a CPU encoder or a
feed-forward ``Stylizer``), and not at all where the user tuned glibc's allocator through its environment
variables or set ``SEMSTYLE_KEEP_FREED_MEMORY=0`` (a long-lived process that should hand memory back between
runs).
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

# mallopt(3) parameter numbers, from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_KEEP_BYTES = 2**31 - 1  # mallopt takes an int: the largest trim threshold it accepts
_USER_SETTINGS = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


@functools.cache
def keep_freed_memory() -> bool:
    """Serve large blocks from glibc's heap and keep them after ``free``; True when glibc accepted both settings.

    A no-op (False) off Linux, on a C library without glibc's ``mallopt`` (musl's accepts nothing), with
    ``SEMSTYLE_KEEP_FREED_MEMORY=0``, and when the environment sets any ``MALLOC_*_`` allocator variable or a
    ``glibc.malloc`` tunable. Idempotent.

    It reaches the main thread's heap, where the command line, the API and the benchmarks run. Other threads (the
    studio's jobs) have heaps of at most 64 MB and still map larger blocks afresh: no gain there, and no harm.
    """
    if not sys.platform.startswith("linux") or os.environ.get("SEMSTYLE_KEEP_FREED_MEMORY") == "0":
        return False
    if any(name in os.environ for name in _USER_SETTINGS) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))
