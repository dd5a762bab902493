"""semstyle: semantic and deformable neural style transfer.

``semstyle.run`` (:func:`semstyle.api.run`) is imported on first use, so that the command line answers
``--help`` and config errors without loading torch.
"""

import os

# NNPACK's convolutions (core/nnpack.py) run on NNPACK's own threads. After each parallel region PyTorch's OpenMP
# threads (GNU libgomp in the pip wheels) spin for about 300 000 rounds before they sleep, and on a 2-core CPU that
# spinning took the cores NNPACK needed: a VGG-19 pass at 512 px ran 1.0 s instead of 0.8 s. 10 000 rounds left the
# native convolutions' times unchanged (docs/benchmarks.md, *Fewer FLOPs per pass*). libgomp reads it when torch is
# first imported, so a script that imports torch before semstyle sets it itself.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from .errors import ConfigError, ImageError, SemstyleError  # noqa: E402
from .version import __version__  # noqa: E402

__all__ = ["run", "SemstyleError", "ConfigError", "ImageError", "__version__"]


def __getattr__(name):
    if name == "run":
        from .api import run

        return run
    raise AttributeError(f"module 'semstyle' has no attribute {name!r}")
