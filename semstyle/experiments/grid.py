"""A sweep's grid and a search's space, checked without torch: Hydra's override grammar in, one config per run out.

:mod:`.sweep` runs the grid; the command line checks it first with these functions (:func:`check_grid`), so that
a typo'd key, a bad value or a missing image in any run answers in one line before torch, Hydra's launchers and the
methods load.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from ..conf import check_input_files, load_config
from ..conf.sizes import check_config_sizes
from ..conf.vocab import METRIC_SIZE, METRICS, is_metric
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


def _run_prefix(name: str, texts: dict) -> str:
    return f"run {name} ({_describe(texts)}): " if texts else ""


def validate(
    config, base: list[str], combos: list[tuple[str, dict, dict]], prefix: Callable[[str, dict], str] = _run_prefix
) -> None:
    """Load every combination's config (:func:`semstyle.conf.load_config`) and check the files it reads
    (:func:`semstyle.conf.check_input_files`) and their sizes (:func:`semstyle.conf.sizes.check_config_sizes`)
    before any run starts: a typo'd key, a wrong type, a bad value, a missing image or a size too small for the
    network is one line naming the run (``prefix(name, texts)``), the key or file and what is wrong."""
    for name, texts, values in combos:
        try:
            cfg = load_config(config, run_overrides(base, values, Path(RUNS_DIR) / name))
            check_input_files(cfg)
            check_config_sizes(cfg)
        except SemstyleError as e:
            raise ConfigError(f"{prefix(name, texts)}{e}") from None


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


# -- a search's space -------------------------------------------------------------------------------------------------

CONSTRAINT = re.compile(r"^\s*([A-Za-z_]\w*)\s*(>=|<=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


def parse_constraint(text: str) -> tuple[str, str, float]:
    """``"ssim>=0.4"`` as ``("ssim", ">=", 0.4)``, or a one-line error."""
    match = CONSTRAINT.match(str(text))
    check(
        match is not None,
        f"--where {text!r}: expected METRIC OP NUMBER with OP one of >=, <=, >, <, e.g. ssim>=0.4",
    )
    return match[1], match[2], float(match[3])


def _check_metric(name: str, what: str) -> None:
    """``name`` is a key :func:`semstyle.experiments.metrics.evaluate` can return (per-style distances of a blend
    included)."""
    check(is_metric(name), f"{what} {name!r}: not a metric; metrics: {', '.join(METRICS)}")


def parse_space(space: dict[str, str]) -> dict[str, str]:
    """``{key: range}`` checked: each range is a search range in Hydra's grammar (one line per bad entry)."""
    check(
        isinstance(space, dict) and space, "search: give at least one KEY=RANGE, e.g. style_weight=interval(1e-7,1e-5)"
    )
    out = {}
    for key, spec in space.items():
        _check_key(key)
        override = parse_override(f"{key}={spec}")
        check(
            override.is_sweep_override(),
            f"{key}={spec}: a search needs a range: interval(lo,hi), tag(log,interval(lo,hi)), a,b,c or range()",
        )
        if override.is_choice_sweep() or override.is_range_sweep():
            for value in override.sweep_iterator():
                check(
                    value is None or isinstance(value, (str, int, float, bool)),
                    f"{key}={spec}: Optuna chooses among numbers and strings only, not {value!r}",
                )
        else:
            lo, hi = override.value().start, override.value().end
            check(lo < hi, f"{key}={spec}: the interval is empty")
            if "log" in override.value().tags:
                check(lo > 0, f"{key}={spec}: a log interval needs a positive lower end")
        out[key] = spec
    return out


def endpoints(key: str, spec: str) -> list:
    """Values that bound a range: its two ends, or every choice."""
    override = parse_override(f"{key}={spec}")
    if override.is_interval_sweep():
        return [override.value().start, override.value().end]
    return list(override.sweep_iterator())


def endpoint_trials(space: dict[str, str]) -> list[tuple[str, dict, dict]]:
    """Trials at every range's ends, each with the other keys at their first end, as ``(label, {}, values)``: the
    configs a search loads before any run starts."""
    firsts = {k: endpoints(k, s)[0] for k, s in space.items()}
    combos = []
    for key, spec in space.items():
        for value in endpoints(key, spec):
            values = {**firsts, key: value}
            if all(values != c[2] for c in combos):
                combos.append((f"a trial with {', '.join(f'{k}={v}' for k, v in values.items())}", {}, values))
    return combos


def check_search(
    config, space, overrides, *, minimize, maximize, where, trials, seed, batch, startup, metric_size
) -> tuple[dict, dict[str, str]]:
    """What :func:`.search.run_search` checks before its folder and launcher: the goal, the constraints, the
    counts, the space and the config at every range's ends. Returns the search's settings and its checked space."""
    check((minimize is None) != (maximize is None), "search: give one of --minimize METRIC or --maximize METRIC")
    objective = minimize or maximize
    _check_metric(objective, "--minimize" if minimize else "--maximize")
    where = [where] if isinstance(where, str) else list(where)
    constraints = [parse_constraint(c) for c in where]
    for name, _, _ in constraints:
        _check_metric(name, "--where")
    for what, value, lo in (("--trials", trials, 1), ("--batch", batch, 1), ("--seed", seed, 0)):
        check(
            isinstance(value, int) and not isinstance(value, bool) and value >= lo,
            f"{what}: must be an integer >= {lo}, got {value!r}",
        )
    startup = min(10, max(1, trials // 2)) if startup is None else startup
    check(isinstance(startup, int) and startup >= 0, f"--startup: must be an integer >= 0, got {startup!r}")
    metric_size = METRIC_SIZE if metric_size is None else metric_size
    check(
        isinstance(metric_size, int) and 32 <= metric_size <= 4096,
        f"--metric-size: must be an integer in [32, 4096], got {metric_size!r}",
    )
    space = parse_space(space)
    base, _ = _check_base(list(overrides))
    validate(config, base, endpoint_trials(space), prefix=lambda label, _: f"{label}: ")
    settings = {
        "objective": objective,
        "direction": "minimize" if minimize else "maximize",
        "where": where,
        "trials": trials,
        "seed": seed,
        "batch": batch,
        "startup": startup,
        "metric_size": metric_size,
        "sampler": "TPE",
    }
    return settings, space
