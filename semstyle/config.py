"""Run configs: YAML file + ``key=value`` overrides, checked against the method's schema.

Every method shares the top-level keys in :data:`COMMON`; a method module adds its own in ``DEFAULTS``.
Unknown keys are an error that names the key and lists the valid ones.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from .errors import ConfigError, check

COMMON = {
    "method": "gatys",
    "size": 512,  # final long side in px
    "steps": 100,  # optimisation steps per scale
    "scales": [],  # long sides of a coarse-to-fine schedule; empty = one scale at `size`
    "seed": 0,
    "precision": "auto",  # auto | fp32 | bf16
    "device": "auto",  # auto | cpu | cuda
    "out_dir": None,  # run folder; default runs/<method>-<timestamp>
    "save_every": 0,  # write an intermediate frame every N steps (0 = never)
    "resume": False,  # continue an interrupted run from <out_dir>.partial
    "progress": True,  # tqdm progress bar
}


def method_module(name: str):
    """The module ``semstyle.methods.<name>``, or a :class:`ConfigError` listing the methods there are."""
    from . import methods

    check(isinstance(name, str) and name in methods.available(),
          f"method: unknown method {name!r}; available: {', '.join(methods.available())}")
    return methods.load(name)


def _load_yaml(path) -> DictConfig:
    path = Path(path)
    check(path.is_file(), f"config file {path}: not found")
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # yaml.YAMLError and friends: report on one line
        raise ConfigError(f"config file {path}: not valid YAML ({' '.join(str(e).split())})") from None
    check(isinstance(cfg, DictConfig), f"config file {path}: must be a mapping of keys to values")
    return cfg


def _parse_overrides(overrides) -> DictConfig:
    for item in overrides:
        check("=" in item, f"override {item!r}: expected key=value")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as e:
        raise ConfigError(f"overrides: {' '.join(str(e).split())}") from None


def _valid_keys(schema: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for key, value in schema.items():
        keys.append(prefix + str(key))
        if isinstance(value, DictConfig):
            keys += _valid_keys(value, prefix + f"{key}.")
    return keys


def load_config(config=None, overrides=()) -> DictConfig:
    """Merge ``COMMON``, the method's ``DEFAULTS``, a config (path, dict or DictConfig) and dotlist overrides.

    The method is taken from the overrides, else the config, else ``gatys``. Values are validated by
    :func:`check_common` and the method's ``validate``.
    """
    if config is None:
        user = OmegaConf.create({})
    elif isinstance(config, (str, os.PathLike)):
        user = _load_yaml(config)
    else:
        user = OmegaConf.create(config if not isinstance(config, DictConfig) else OmegaConf.to_container(config))
    cli = _parse_overrides(overrides)
    method = cli.get("method", user.get("method", COMMON["method"]))
    module = method_module(method)
    schema = OmegaConf.create({**COMMON, **module.DEFAULTS})
    schema.method = method
    OmegaConf.set_struct(schema, True)
    try:
        cfg = OmegaConf.merge(schema, user, cli)
    except ConfigKeyError as e:
        key = getattr(e, "full_key", None) or getattr(e, "key", "?")
        raise ConfigError(
            f"unknown config key {key!r} for method {method}; valid keys: {', '.join(_valid_keys(schema))}"
        ) from None
    except OmegaConfBaseException as e:
        raise ConfigError(f"config: {' '.join(str(e).split())}") from None
    check_common(cfg)
    if hasattr(module, "validate"):
        module.validate(cfg)
    return cfg


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


def check_common(cfg: DictConfig) -> None:
    check_number(cfg, "size", lo=16, hi=8192, integer=True)
    check_number(cfg, "steps", lo=0, integer=True)
    check_number(cfg, "seed", integer=True)
    check_number(cfg, "save_every", lo=0, integer=True)
    check_choice(cfg, "precision", ("auto", "fp32", "bf16"))
    check(isinstance(cfg.scales, ListConfig), f"scales: must be a list of long sides, got {cfg.scales!r}")
    for s in cfg.scales:
        check(isinstance(s, int) and 16 <= s <= 8192, f"scales: each entry must be an integer in [16, 8192], got {s!r}")


def scale_schedule(cfg: DictConfig) -> list[int]:
    """Long sides to optimise at: the ``scales`` below ``size``, then ``size`` itself."""
    return sorted({int(s) for s in cfg.scales if s < cfg.size}) + [int(cfg.size)]


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)
