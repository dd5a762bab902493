"""semstyle: semantic and deformable neural style transfer.

``semstyle.run`` (:func:`semstyle.api.run`) is imported on first use, so that the command line answers
``--help`` and config errors without loading torch.
"""

from .errors import ConfigError, ImageError, SemstyleError  # noqa: E402
from .version import __version__  # noqa: E402

__all__ = ["run", "SemstyleError", "ConfigError", "ImageError", "__version__"]


def __getattr__(name):
    if name == "run":
        from .api import run

        return run
    raise AttributeError(f"module 'semstyle' has no attribute {name!r}")
