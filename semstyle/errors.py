"""User-facing errors.

A :class:`SemstyleError` is bad input or a bad config: the CLI prints its message on one line and exits with
code 2. Anything else is an internal error (exit code 1, with a traceback).
"""


class SemstyleError(Exception):
    """Bad input, file or option; the message names it and says what is wrong."""


class ConfigError(SemstyleError, ValueError):
    """A config key or value is unknown or out of range."""


class ImageError(SemstyleError, ValueError):
    """An image or map file is missing, unreadable or unusable."""


class ResourceError(SemstyleError):
    """The machine cannot do the run as configured: not enough memory or disk; the message says what would fit."""


def check(condition: bool, message: str, error: type = ConfigError) -> None:
    """Raise ``error(message)`` unless ``condition`` holds."""
    if not condition:
        raise error(message)
