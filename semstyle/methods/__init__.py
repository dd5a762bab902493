"""Style-transfer methods. Each is a module ``semstyle.methods.<name>`` with:

- ``DEFAULTS``: its config keys and default values (on top of :data:`semstyle.config.COMMON`);
- ``validate(cfg)``: raises :class:`semstyle.errors.ConfigError` for bad values (optional);
- ``run(cfg, run_dir) -> Tensor``: runs from a resolved config, writing into a :class:`semstyle.runs.RunDir`;
- a Python entry point such as ``stylize(...)``.

Methods are found by module name, so adding one needs no registry edit.
"""

from __future__ import annotations

import importlib
import pkgutil


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(name: str):
    return importlib.import_module(f"{__name__}.{name}")
