"""Configs: every method's schema (dataclasses), one loader, one vocabulary. Imports no method code and no torch."""

from .checks import check_choice, check_number
from .common import COSMETIC_KEYS, RunConfig, packaged, scale_schedule
from .doodle import CNNMRF, DOODLE
from .dst import DST
from .gatys import GATYS, RECONSTRUCT
from .loader import Schema, load, to_yaml
from .strotss import STROTSS
from .vocab import LAYER_NAMES, OPTIMIZERS, check_layers

SCHEMAS: dict[str, Schema] = {s.name: s for s in (GATYS, DOODLE, CNNMRF, STROTSS, DST, RECONSTRUCT)}
"""Every method's config schema by method name."""

__all__ = [
    "SCHEMAS",
    "Schema",
    "load",
    "to_yaml",
    "RunConfig",
    "packaged",
    "scale_schedule",
    "COSMETIC_KEYS",
    "check_number",
    "check_choice",
    "check_layers",
    "LAYER_NAMES",
    "OPTIMIZERS",
]
