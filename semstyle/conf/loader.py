"""Configs: a method's dataclass schema, a YAML file or dict, and ``key=value`` overrides, merged and checked.

One mechanism for every method (Hydra's structured-config model on OmegaConf):

- the method's dataclass gives every key, its type and its default;
- a *preset* replaces some defaults (``cnnmrf`` is a preset of ``doodle``);
- a *group* key fills the keys left null from the table of its chosen value (DST's ``base: gram | strotss``,
  the doodle's ``style_loss: mrf | gram_masked``), so that the resolved config has no nulls left to fill later;
- old spellings of renamed keys still work, with a deprecation warning.

Unknown keys name the key and list the valid ones; wrong types and bad values are one-line
:class:`~semstyle.errors.ConfigError`\\ s, raised before any heavy work.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, InterpolationResolutionError, OmegaConfBaseException, ValidationError

from ..errors import ConfigError, check
from .common import check_common


@dataclass(frozen=True)
class Schema:
    """What the loader knows of a method: its config, and nothing of its code."""

    name: str
    config: type
    validate: Callable[[DictConfig], None] | None = None
    preset: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)  # {key: {value: {dotted key: default}}}
    renamed: dict = field(default_factory=dict)  # {old dotted key: new dotted key}
    summary: str = ""


def _load_yaml(path) -> DictConfig:
    path = Path(path)
    check(path.is_file(), f"config file {path}: not found")
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # yaml.YAMLError and friends: report on one line
        raise ConfigError(f"config file {path}: not valid YAML ({' '.join(str(e).split())})") from None
    check(isinstance(cfg, DictConfig), f"config file {path}: must be a mapping of keys to values")
    return cfg


def parse_overrides(overrides) -> DictConfig:
    """``key=value`` strings (values in YAML) as a config; each bad one is a one-line error naming it."""
    merged = OmegaConf.create({})
    for item in overrides:
        check(isinstance(item, str) and "=" in item, f"override {item!r}: expected key=value")
        try:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([item]))
        except Exception as e:  # OmegaConf's and YAML's parse errors alike: say which override, on one line
            raise ConfigError(f"override {item!r}: {' '.join(str(e).split(chr(10))[0].split())}") from None
    return merged


def user_config(config=None) -> tuple[DictConfig, str]:
    """A config given as a path, dict or DictConfig (or None), and a name for it in messages."""
    if config is None:
        return OmegaConf.create({}), "the config"
    if isinstance(config, (str, os.PathLike)):
        return _load_yaml(config), f"config file {config}"
    container = OmegaConf.to_container(config) if isinstance(config, DictConfig) else dict(config)
    return OmegaConf.create(container), "the config"


def method_of(user: DictConfig, cli: DictConfig, default: str = "gatys") -> str:
    return cli.get("method", user.get("method", default))


def valid_keys(node, prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items():
        keys.append(prefix + str(key))
        if isinstance(value, DictConfig):
            keys += valid_keys(value, prefix + f"{key}.")
    return keys


def schema_node(schema: Schema) -> DictConfig:
    """The method's defaults as a typed, closed (struct) config."""
    node = OmegaConf.structured(schema.config)
    node.method = schema.name
    if schema.preset:
        node = OmegaConf.merge(node, schema.preset)
    OmegaConf.set_struct(node, True)
    return node


def _rename(cfg: DictConfig, renamed: dict, where: str) -> None:
    for old, new in renamed.items():
        value = OmegaConf.select(cfg, old, default="__absent__", throw_on_missing=False)
        if isinstance(value, str) and value == "__absent__":
            continue
        warnings.warn(
            f"{where}: '{old}' is now spelled '{new}'; the old name will be removed", DeprecationWarning, stacklevel=3
        )
        parent, _, leaf = old.rpartition(".")
        container = OmegaConf.select(cfg, parent) if parent else cfg
        del container[leaf]
        if parent and not container:  # an emptied group (style: {image: ...}) gives its name to the new key
            del cfg[parent]
        OmegaConf.update(cfg, new, value, force_add=True)


_CONVERT = re.compile(r"Value '(.*)' of type '(\w+)' could not be converted to (\w+)")


def _validation_message(e: ValidationError) -> str:
    key = getattr(e, "full_key", None) or "config"
    msg = " ".join(str(e.msg).split("\n")[0].split())
    match = _CONVERT.search(msg)
    if match:
        kind = {"Integer": "an integer", "Float": "a number", "String": "a string"}.get(match[3], match[3])
        return f"{key}: must be {kind}, got {match[1]!r}"
    if "is not a ListConfig, list or tuple" in msg:
        return f"{key}: must be a list, e.g. [a, b]"
    if "is not a valid bool" in msg:
        value = re.search(r"Value '(.*)' is not", msg)
        return f"{key}: must be true or false, got {value[1] if value else '?'!r}"
    return f"{key}: {msg}"


def load(schema: Schema, config=None, overrides=(), *, origin: str | None = None) -> DictConfig:
    """Merge the schema's defaults, a config (path, dict or DictConfig) and dotlist overrides; resolve and check.

    The result is fully resolved: every key has its final value, no interpolation and no null left for the code
    to fill in later.
    """
    user, where = user_config(config)
    where = origin or where
    cli = parse_overrides(overrides)
    _rename(user, schema.renamed, where)
    _rename(cli, schema.renamed, "overrides")
    written_for = user.get("method", schema.name)
    hint = (
        f" ({where} was written for method {written_for}, not {schema.name})"
        if written_for != schema.name and "method" in cli
        else ""
    )
    node = schema_node(schema)
    try:
        cfg = OmegaConf.merge(node, user, cli)
    except ConfigKeyError as e:
        key = getattr(e, "full_key", None) or getattr(e, "key", "?")
        raise ConfigError(
            f"unknown config key {key!r} for method {schema.name}{hint}; valid keys: {', '.join(valid_keys(node))}"
        ) from None
    except ValidationError as e:
        raise ConfigError(_validation_message(e) + hint) from None
    except OmegaConfBaseException as e:
        raise ConfigError(f"config: {' '.join(str(e).split())}{hint}") from None
    try:  # resolve ${...} now, so a broken interpolation is a config error, not a failure mid-run
        cfg = OmegaConf.merge(node, OmegaConf.to_container(cfg, resolve=True))
    except InterpolationResolutionError as e:
        key = getattr(e, "full_key", None) or "?"
        cause = e
        while cause is not None and not isinstance(cause, ConfigError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:  # a resolver's own message (``${asset:...}``) says it all
            raise ConfigError(f"{key}: {cause}") from None
        raise ConfigError(f"{key}: {' '.join(str(e).split(chr(10))[0].split())}") from None
    except OmegaConfBaseException as e:
        raise ConfigError(f"config: {' '.join(str(e).split())}") from None
    try:
        for key, table in schema.groups.items():
            choice = OmegaConf.select(cfg, key)
            check(choice in table, f"{key}: {choice!r} is not one of {', '.join(table)}")
            for path, value in table[choice].items():
                if OmegaConf.select(cfg, path) is None:
                    OmegaConf.update(cfg, path, value)
        check_common(cfg)
        if schema.validate is not None:
            schema.validate(cfg)
    except ConfigError as e:
        raise ConfigError(f"{e}{hint}") from None
    return cfg


def to_yaml(cfg: DictConfig, header: str = "") -> str:
    """The resolved config as YAML, after ``header`` lines written as comments."""
    comments = "".join(f"# {line}\n" for line in header.splitlines())
    return comments + OmegaConf.to_yaml(cfg, resolve=True)
