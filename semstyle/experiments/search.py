"""Weight search: the best metric of a run under constraints on other metrics, found by Optuna through Hydra.

    semstyle search configs/default.yaml --minimize style_distance --where "ssim>=0.4" --trials 16 \\
        "content_weight=tag(log,interval(1e-4,1e-1))" "style_weight=tag(log,interval(1e-7,1e-4))" --seed 0

Search ranges use Hydra's override grammar, as ``hydra-optuna-sweeper`` reads them: ``interval(lo,hi)`` (uniform;
integers when both ends are), ``tag(log,interval(lo,hi))`` (log-uniform), ``a,b,c`` (one of; numbers or strings)
and ``range(start,stop,step)``. Each trial is an ordinary run in ``SWEEP/runs/<nnn>``, scored by
:func:`semstyle.experiments.metrics.evaluate` (one fixed reference encoder and size, so trials compare), and
recorded in ``SWEEP/sweep.json`` with its metrics; ``SWEEP/search.png`` plots the objective per trial and the best
so far.

The sampler is Optuna's TPE (Bergstra et al. 2011) with a seed, asked for ``batch`` trials at a time (Hydra's
optuna sweeper's ``n_jobs``, default 2 there and here), so that the trials depend on the seed and the batch, never
on the machine. Optuna's TPE (2.x) has no constraints of its own, so a violated constraint is a penalty: TPE ranks
trials by their value only (it splits them at a quantile of the sorted values), hence every trial that violates a
constraint gets a value worse than any trial that meets them all, ordered by how far it misses
(:func:`penalised`), and a failed run a value worse still. Re-running the same search in the same folder asks
the same trials (same seed) and reuses their finished runs.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Callable

import optuna
from hydra.core.hydra_config import HydraConfig

from .. import api
from ..core.image import atomic_write
from ..errors import ConfigError, SemstyleError, check
from ..viz.plots import search_progress
from . import grid
from . import metrics as metric_module
from . import sweep as sw
from .metrics import KEYS

OPERATORS = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}
CONSTRAINT = re.compile(r"^\s*([A-Za-z_]\w*)\s*(>=|<=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
# Trials that violate a constraint score PENALTY * (1 + how far they miss), so they rank after every trial that
# meets the constraints: the metrics stay far below 1e200 (Gram distances of 0-255 Caffe features reach ~1e11 at
# 48 px); failed runs rank after them. A product, not a sum, so that the miss still orders them at this magnitude.
PENALTY = 1e200
FAILED = 1e250
PLOT = "search.png"
BATCH = 2  # trials asked at once: hydra-optuna-sweeper's default n_jobs


def parse_constraint(text: str) -> tuple[str, str, float]:
    """``"ssim>=0.4"`` as ``("ssim", ">=", 0.4)``, or a one-line error."""
    match = CONSTRAINT.match(str(text))
    check(
        match is not None,
        f"--where {text!r}: expected METRIC OP NUMBER with OP one of >=, <=, >, <, e.g. ssim>=0.4",
    )
    return match[1], match[2], float(match[3])


def violation(metrics: dict, constraints) -> float:
    """How far ``metrics`` miss the constraints (0 when all hold); a missing metric is an infinite miss."""
    total = 0.0
    for name, op, bound in constraints:
        value = metrics.get(name)
        if value is None or not math.isfinite(value):
            return math.inf
        if not OPERATORS[op](value, bound):
            total += abs(value - bound) + 1e-9  # a strict bound missed by equality still misses
    return total


def penalised(objective: float | None, miss: float, sign: float) -> float:
    """The value Optuna gets (``sign`` -1 when maximising): the objective when every constraint holds, else
    ``sign * PENALTY * (1 + miss)``, else ``sign * FAILED`` (no objective, or a metric missing)."""
    if objective is None or not math.isfinite(objective) or not math.isfinite(miss):
        return sign * FAILED
    if miss > 0:
        return sign * PENALTY * (1.0 + min(miss, 1e40))
    return objective


def _check_metric(name: str, what: str) -> None:
    """``name`` is a key :func:`semstyle.experiments.metrics.evaluate` can return (per-style distances of a blend
    included)."""
    check(
        name in KEYS or re.fullmatch(r"style_distance_\d+", name) is not None,
        f"{what} {name!r}: not a metric; metrics: {', '.join(KEYS)}",
    )


def parse_space(space: dict[str, str]) -> dict[str, str]:
    """``{key: range}`` checked: each range is a search range in Hydra's grammar (one line per bad entry)."""
    check(
        isinstance(space, dict) and space, "search: give at least one KEY=RANGE, e.g. style_weight=interval(1e-7,1e-5)"
    )
    out = {}
    for key, spec in space.items():
        grid._check_key(key)
        override = grid.parse_override(f"{key}={spec}")
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
    override = grid.parse_override(f"{key}={spec}")
    if override.is_interval_sweep():
        return [override.value().start, override.value().end]
    return list(override.sweep_iterator())


def search_trial(cfg) -> float:
    """Hydra's task function for one trial: run it (or reuse its finished run), score it, record it, and return the
    value Optuna minimises."""
    meta = cfg[sw.META]
    folder = Path(meta.folder)
    data = sw.load_sweep(folder)
    settings = data["search"]
    sign = -1.0 if settings["direction"] == "maximize" else 1.0
    constraints = [parse_constraint(c) for c in settings["where"]]
    values, texts = sw.job_values(cfg, list(data["params"]))
    name = grid.run_name(HydraConfig.get().job.num, settings["trials"])
    known = {r["name"]: r for r in data["runs"]}.get(name)
    if known and known.get("overrides") not in (None, texts) and sw.finished(folder / sw.RUNS_DIR / name):
        sw.set_run(folder, name, state="failed", error=f"{sw.RUNS_DIR}/{name} holds another trial's run")
        return sign * FAILED
    result = sw.execute(folder, name, values, texts, int(meta.threads), str(meta.cwd))
    if result["state"] != "done":
        sw.set_run(folder, name, value=sign * FAILED, feasible=False)
        return sign * FAILED
    try:
        with sw.torch_threads(result.get("threads") or int(meta.threads)):  # parallel trials share the cores here too
            scores = metric_module.evaluate(folder / sw.RUNS_DIR / name, size=int(settings["metric_size"]))
    except Exception as e:  # the run exists but cannot be scored: a failed trial, said in one line
        sw.set_run(folder, name, state="failed", error=f"metrics: {sw._error_line(e)}", value=sign * FAILED)
        return sign * FAILED
    objective = scores.get(settings["objective"])
    miss = violation(scores, constraints)
    value = penalised(objective, miss, sign)
    error = None if objective is not None else f"the run has no metric {settings['objective']}"
    sw.set_run(
        folder,
        name,
        metrics=scores,
        objective=objective,
        feasible=bool(objective is not None and miss == 0),
        value=value,
        **({"state": "failed", "error": error} if error else {}),
    )
    return value


def best(folder) -> dict | None:
    """The best finished trial that meets every constraint (None if none does)."""
    data = sw.load_sweep(folder)
    sign = -1.0 if data["search"]["direction"] == "maximize" else 1.0
    feasible = [r for r in data["runs"] if r.get("state") == "done" and r.get("feasible")]
    return min(feasible, key=lambda r: sign * r["objective"]) if feasible else None


def run_search(
    config,
    space: dict[str, str],
    out,
    minimize: str | None = None,
    maximize: str | None = None,
    where=(),
    trials: int = 8,
    seed: int = 0,
    launcher: str = "joblib",
    overrides=(),
    n_jobs: int | None = None,
    batch: int = BATCH,
    startup: int | None = None,
    metric_size: int | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Search ``space`` (``{key: range}``) for the run with the lowest ``minimize`` (or highest ``maximize``)
    metric among those meeting every ``where`` constraint (``"ssim>=0.4"``); returns the sweep folder, whose
    ``sweep.json`` names the ``best`` trial.

    ``trials`` runs in all, ``batch`` asked at a time and run in parallel (at most ``n_jobs`` at once). TPE's
    first ``startup`` trials are random (default half the trials, at most Optuna's 10: with its default of 10, a
    search of 10 trials or fewer would be random throughout). ``metric_size`` is the long side the metrics are
    computed at (default the metrics' reference size, 256).
    """
    log = log or (lambda message: None)
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
    metric_size = metric_module.REFERENCE_SIZE if metric_size is None else metric_size
    check(
        isinstance(metric_size, int) and 32 <= metric_size <= 4096,
        f"--metric-size: must be an integer in [32, 4096], got {metric_size!r}",
    )
    space = parse_space(space)
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
    folder, record = sw.prepare(config, space, out, overrides, launcher, {"search": settings})
    _, hydra_settings = sw._check_base(list(overrides))
    base = record["overrides"]
    # every range's ends (each with the other keys at their first end) load as configs before any run starts
    firsts = {k: endpoints(k, s)[0] for k, s in space.items()}
    combos = []
    for key, spec in space.items():
        for value in endpoints(key, spec):
            values = {**firsts, key: value}
            if all(values != c[2] for c in combos):
                combos.append((f"a trial with {', '.join(f'{k}={v}' for k, v in values.items())}", {}, values))
    for label, _, values in combos:
        try:
            api.load_config(record["config"], sw.run_overrides(base, values, Path(sw.RUNS_DIR) / "000"))
        except ConfigError as e:
            raise ConfigError(f"{label}: {e}") from None
    n_jobs, threads = sw.plan_jobs(launcher, n_jobs, batch, record["config"], base, combos)
    hydra = [
        "hydra/sweeper=optuna",
        *sw.launcher_overrides(launcher, n_jobs, threads),
        f"hydra.sweeper.direction={settings['direction']}",
        f"hydra.sweeper.n_trials={trials}",
        f"hydra.sweeper.n_jobs={batch}",
        f"hydra.sweeper.sampler.seed={seed}",
        f"hydra.sweeper.sampler.n_startup_trials={startup}",
        "hydra.sweeper.study_name=semstyle",
        # a failed trial is a penalised value, never a reason to stop the search
        "hydra.sweeper.max_failure_rate=1.0",
        *hydra_settings,  # the user's hydra.* settings, last: they win
        *(f"{k}={v}" for k, v in space.items()),
    ]
    sw.check_hydra(space, hydra)

    folder.mkdir(parents=True, exist_ok=True)
    with sw._sweep_lock(folder):
        old = sw.load_sweep(folder)["runs"] if (folder / sw.SWEEP_FILE).is_file() else []
        sw._write(folder, {**record, "launcher": launcher, "command": sw._command(), "runs": old, "best": None})
        log(
            f"search {folder}: {trials} trials, {batch} at a time, {settings['direction']} {objective}"
            + (f" where {' and '.join(where)}" if where else "")
            + f"; launcher {launcher}, {n_jobs} at a time, {threads or 'the job allocation of'} torch thread(s) each"
        )
        meta = {"folder": str(folder.resolve()), "threads": threads, "cwd": os.getcwd(), "run": None}
        conf_dir = sw.write_primary(folder, space, meta)
        _quiet_optuna()
        try:
            sw.hydra_multirun(conf_dir, search_trial, hydra)
        except KeyboardInterrupt:
            sw._settle(folder, "interrupted", "pending")
            raise KeyboardInterrupt(f"search {folder}: run the same command again to continue") from None
        except SemstyleError:
            raise
        except Exception as e:  # the launcher or the sweeper failed (a worker killed, a cluster unreachable)
            sw._settle(folder, f"launcher {launcher} failed: {sw._error_line(e)}", "failed")
        top = best(folder)
        sw.update_runs(folder, lambda data: data.update(best=top["name"] if top else None))
        plot(folder)
    return folder


def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def plot(folder) -> Path | None:
    """``search.png``: each trial's objective (meeting the constraints: dots; missing them: crosses) and the best so
    far among those meeting them (:func:`semstyle.viz.plots.search_progress`)."""
    folder = Path(folder)
    data = sw.load_sweep(folder)
    settings = data["search"]
    runs = sorted((r for r in data["runs"] if r.get("objective") is not None), key=lambda r: r["name"])
    if not runs:
        return None
    where = " and ".join(settings["where"])
    return atomic_write(
        folder / PLOT,
        lambda tmp: search_progress(
            [(int(r["name"]), r["objective"]) for r in runs if r.get("feasible")],
            [(int(r["name"]), r["objective"]) for r in runs if not r.get("feasible")],
            settings["direction"] == "maximize",
            f"{settings['direction']} {settings['objective']}" + (f" where {where}" if where else ""),
            settings["objective"],
            tmp,
        ),
    )


__all__ = ["run_search", "best", "plot", "parse_constraint", "violation", "penalised"]
