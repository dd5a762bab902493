"""Value checks shared by the method schemas; each raises a one-line :class:`~semstyle.errors.ConfigError`."""

from __future__ import annotations

from pathlib import Path

from omegaconf import ListConfig, OmegaConf

from ..errors import ImageError, check


def is_list(value) -> bool:
    return isinstance(value, (list, tuple, ListConfig))


def check_number(cfg, key: str, lo=None, hi=None, integer: bool = False, lo_open: bool = False) -> None:
    """``cfg[key]`` (dotted key) is a number within [lo, hi] (``(lo, hi]`` when ``lo_open``)."""
    value = OmegaConf.select(cfg, key)
    if isinstance(value, str) and not integer:  # YAML 1.1 reads "1e9" (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
        else:
            OmegaConf.update(cfg, key, value)
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    check(ok_type and not isinstance(value, bool), f"{key}: must be {kind}, got {value!r}")
    if lo is not None:
        check(value > lo if lo_open else value >= lo, f"{key}: must be {'>' if lo_open else '>='} {lo}, got {value}")
    if hi is not None:
        check(value <= hi, f"{key}: must be <= {hi}, got {value}")


def check_choice(cfg, key: str, choices) -> None:
    value = OmegaConf.select(cfg, key)
    check(value in choices, f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")


def check_bool(cfg, key: str) -> None:
    value = OmegaConf.select(cfg, key)
    check(isinstance(value, bool), f"{key}: must be true or false, got {value!r}")


def numbers(values, key: str) -> list[float]:
    """A list of non-negative numbers, as floats."""
    check(is_list(values), f"{key}: must be a list of numbers, got {values!r}")
    for v in values:
        check(isinstance(v, (int, float)) and not isinstance(v, bool), f"{key}: must be numbers, got {v!r}")
        check(v >= 0, f"{key}: must be >= 0, got {v}")
    return [float(v) for v in values]


# The keys that name input images, in every method's vocabulary, and what a message calls them.
INPUT_IMAGES = {
    "content": "content image",
    "style": "style image",
    "content_map": "content map",
    "style_map": "style map",
}


def check_input_images(cfg) -> None:
    """Every input image the config names exists: a missing file is one line before torch or a method loads (the
    method's loader still checks what a file holds)."""
    for key, what in INPUT_IMAGES.items():
        value = OmegaConf.select(cfg, key, default=None)
        for path in value if is_list(value) else [value]:
            if isinstance(path, str) and path.strip() and not Path(path).exists():
                raise ImageError(f"{what} {path}: file not found")
