"""Configs: every method's schema (dataclasses), one loader, one vocabulary. Imports no method code and no torch."""

from ..errors import check
from .checks import check_choice, check_number, check_run_folder
from .common import COSMETIC_KEYS, RunConfig, packaged, scale_schedule, steps_per_scale
from .doodle import CNNMRF, DOODLE
from .dst import DST
from .feedforward import TRAIN_SCHEMAS
from .gatys import GATYS, RECONSTRUCT
from .inputs import check_input_files
from .loader import Schema, load, method_of, parse_overrides, to_yaml, user_config
from .strotss import STROTSS
from .vocab import LAYER_NAMES, OPTIMIZERS, check_layers

SCHEMAS: dict[str, Schema] = {s.name: s for s in (GATYS, DOODLE, CNNMRF, STROTSS, DST, RECONSTRUCT)}
"""Every method's config schema by method name."""


def load_config(config=None, overrides=(), default_method: str = "gatys"):
    """A resolved config: the method named in the overrides, else in the config, else ``default_method``.

    Needs no torch and no method code, so the command line checks a config before either loads."""
    user, where = user_config(config)  # read once; the loader gets the parsed config and its name for messages
    method = method_of(user, parse_overrides(overrides), default_method)
    check(
        isinstance(method, str) and method in SCHEMAS,
        f"method: unknown method {method!r}; available: {', '.join(sorted(SCHEMAS))}",
    )
    return load(SCHEMAS[method], user, overrides, origin=where)


def load_train_config(config=None, overrides=()):
    """A resolved training config: ``method`` (``multimodal`` or ``johnson``) from the overrides, else the config,
    else ``multimodal``."""
    user, where = user_config(config)
    method = method_of(user, parse_overrides(overrides), "multimodal")
    check(
        isinstance(method, str) and method in TRAIN_SCHEMAS,
        f"method: {method!r} is not a trainable network; available: {', '.join(TRAIN_SCHEMAS)}",
    )
    return load(TRAIN_SCHEMAS[method], user, overrides, origin=where)


__all__ = [
    "SCHEMAS",
    "load_config",
    "load_train_config",
    "check_input_files",
    "check_run_folder",
    "Schema",
    "load",
    "to_yaml",
    "RunConfig",
    "packaged",
    "scale_schedule",
    "steps_per_scale",
    "COSMETIC_KEYS",
    "check_number",
    "check_choice",
    "check_layers",
    "LAYER_NAMES",
    "OPTIMIZERS",
]
