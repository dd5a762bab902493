"""semstyle: semantic and deformable neural style transfer."""

__version__ = "0.1.0"

from .errors import ConfigError, ImageError, SemstyleError  # noqa: E402
from .runner import run  # noqa: E402

__all__ = ["run", "SemstyleError", "ConfigError", "ImageError", "__version__"]
