"""A sweep's grid, checked without torch: Hydra's override grammar in, one config per run out.

:mod:`.sweep` runs the grid; the command line checks it first with these functions (:func:`check_grid`), so that
a typo'd key, a bad value or a missing image in any run answers in one line before torch, Hydra's launchers and the
methods load.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from ..conf import check_input_files, load_config
from ..errors import ConfigError, SemstyleError, check

RUNS_DIR = "runs"
META = "semstyle_sweep"  # the node of Hydra's job config that tells a job where its sweep is
RESERVED = ("out_dir", "resume", "progress")  # set by the sweep for every run


# -- values: Hydra's grammar in, plain YAML overrides out ------------------------------------------------------------


def _parser():
    return OverridesParser.create()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def parse_override(item: str):
    """Hydra's parse of one ``key=value`` (a :class:`hydra.core.override_parser.types.Override`), or a one-line
    :class:`ConfigError` naming it."""
    check(isinstance(item, str) and "=" in item, f"override {item!r}: expected key=value")
    try:
        override = _parser().parse_override(item)
    except HydraException as e:
        raise ConfigError(f"override {item!r}: {_one_line(str(e).splitlines()[0] if str(e) else e)}") from None
    check(
        not (override.is_add() or override.is_force_add() or override.is_delete()),
        f"override {item!r}: Hydra's '+' and '~' prefixes are not used here; write key=value",
    )
    return override


def split_overrides(items) -> tuple[dict[str, list[str]], list[str]]:
    """Command-line ``key=value`` items as ``(params, base)``: a key with several values (``a,b`` or
    ``range(1,4)``) is swept, a key with one value is a base override (kept as typed)."""
    params: dict[str, list[str]] = {}
    base: list[str] = []
    seen: set[str] = set()
    for item in items:
        override = parse_override(item)
        key = override.get_key_element()
        check(key not in seen, f"override {item!r}: {key} is given twice")
        seen.add(key)
        if not override.is_sweep_override():
            base.append(item)
            continue
        check(
            override.is_choice_sweep() or override.is_range_sweep(),
            f"override {item!r}: interval() and other search ranges are for `semstyle search`; "
            "a sweep takes values a,b,c or range(start,stop,step)",
        )
        params[key] = list(override.sweep_string_iterator())
    return params, base


def typed(key: str, text: str):
    """The value of one swept ``text`` under Hydra's grammar (``1e-7`` a float, ``[conv4_2]`` a list)."""
    override = parse_override(f"{key}={text}")
    check(not override.is_sweep_override(), f"{key}: value {text!r} is itself a sweep; give one value per entry")
    return override.value()


def dotlist(key: str, value) -> str:
    """``key=value`` for :func:`semstyle.api.run` (OmegaConf's YAML dot-list): JSON is YAML, so the value arrives
    with the type Hydra gave it, also a string that YAML would read as a number."""
    return f"{key}={json.dumps(value)}"


def _check_key(key) -> None:
    check(
        isinstance(key, str) and key.replace(".", "").replace("_", "").isalnum() and not key.startswith("."),
        f"sweep: {key!r} is not a config key",
    )
    check(key.split(".")[0] not in RESERVED, f"{key}: set by the sweep for every run (runs/<name>); do not sweep it")
    check(key.split(".")[0] not in ("hydra", META), f"{key}: not a semstyle config key")


def _check_base(items) -> tuple[list[str], list[str]]:
    """Base overrides split into ``(semstyle, hydra)``; the reserved keys are refused."""
    semstyle, hydra = [], []
    for item in items:
        check(isinstance(item, str) and "=" in item, f"override {item!r}: expected key=value")
        key = item.split("=", 1)[0].strip()
        if key.startswith("hydra.") or key.startswith("hydra/"):
            parse_override(item)  # a typo in Hydra's settings is bad input too
            hydra.append(item)
            continue
        check(key not in RESERVED, f"override {item!r}: {key} is set by the sweep for every run; leave it out")
        semstyle.append(item)
    return semstyle, hydra


def run_overrides(base, values: dict, out_dir: Path, resume: bool = False) -> list[str]:
    """The overrides :func:`semstyle.api.run` gets for one run."""
    return [
        *base,
        *(dotlist(k, v) for k, v in values.items()),
        f"out_dir={json.dumps(str(out_dir))}",
        "progress=false",
        f"resume={'true' if resume else 'false'}",
    ]


# -- the grid -------------------------------------------------------------------------------------------------------


def expand(params: dict[str, list[str]]) -> list[dict[str, str]]:
    """Every combination of the swept values, the first key varying slowest."""
    keys = list(params)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(params[k] for k in keys))]


def run_name(index: int, total: int) -> str:
    return f"{index:0{max(3, len(str(total - 1)))}d}"


def _describe(texts: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in texts.items())


def validate(config, base: list[str], combos: list[tuple[str, dict, dict]]) -> None:
    """Load every combination's config (:func:`semstyle.conf.load_config`) and check the files it reads
    (:func:`semstyle.conf.check_input_files`) before any run starts: a typo'd key, a wrong type, a bad value or a
    missing image is one line naming the run, the key or file and what is wrong."""
    for name, texts, values in combos:
        try:
            check_input_files(load_config(config, run_overrides(base, values, Path(RUNS_DIR) / name)))
        except SemstyleError as e:
            prefix = f"run {name} ({_describe(texts)}): " if texts else ""
            raise ConfigError(f"{prefix}{e}") from None


def _normalise(params) -> dict[str, list[str]]:
    check(isinstance(params, dict), "params: expected {key: [value, ...]}")
    out = {}
    for key, values in params.items():
        _check_key(key)
        values = [values] if isinstance(values, str) else list(values)
        check(len(values) > 0, f"{key}: no values to sweep")
        out[key] = [str(v) for v in values]
    return out


def combinations(params: dict[str, list[str]]) -> list[tuple[str, dict, dict]]:
    """``(name, {key: text}, {key: typed value})`` of every run of the grid ``params``, in sweep order."""
    texts = expand(params)
    return [(run_name(i, len(texts)), t, {k: typed(k, v) for k, v in t.items()}) for i, t in enumerate(texts)]


def check_grid(config, params, overrides) -> None:
    """What :func:`.sweep.run_sweep` checks of a grid before its folder and launcher: the swept keys, the base
    overrides, the config file and every run's config and input files (:func:`validate`)."""
    params = _normalise(params)
    base, _ = _check_base(list(overrides))
    if config is not None:
        check(Path(config).is_file(), f"config file {config}: not found")
    validate(config, base, combinations(params))
