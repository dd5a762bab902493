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
from pathlib import Path
from typing import Callable

import optuna
from hydra.core.hydra_config import HydraConfig

from ..core.image import atomic_write
from ..errors import SemstyleError
from ..viz.plots import search_progress
from . import grid
from . import metrics as metric_module
from . import sweep as sw

OPERATORS = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}
# Trials that violate a constraint score PENALTY * (1 + how far they miss), so they rank after every trial that
# meets the constraints: the metrics stay far below 1e200 (Gram distances of 0-255 Caffe features reach ~1e11 at
# 48 px); failed runs rank after them. A product, not a sum, so that the miss still orders them at this magnitude.
PENALTY = 1e200
FAILED = 1e250
PLOT = "search.png"
BATCH = 2  # trials asked at once: hydra-optuna-sweeper's default n_jobs


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


def search_trial(cfg) -> float:
    """Hydra's task function for one trial: run it (or reuse its finished run), score it, record it, and return the
    value Optuna minimises."""
    meta = cfg[sw.META]
    folder = Path(meta.folder)
    data = sw.load_sweep(folder)
    settings = data["search"]
    sign = -1.0 if settings["direction"] == "maximize" else 1.0
    constraints = [grid.parse_constraint(c) for c in settings["where"]]
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
    settings, space = grid.check_search(
        config, space, overrides, minimize=minimize, maximize=maximize, where=where, trials=trials, seed=seed,
        batch=batch, startup=startup, metric_size=metric_size,
    )  # fmt: skip
    objective, where = settings["objective"], settings["where"]
    folder, record = sw.prepare(config, space, out, overrides, launcher, {"search": settings})
    _, hydra_settings = sw._check_base(list(overrides))
    base = record["overrides"]
    n_jobs, threads = sw.plan_jobs(launcher, n_jobs, batch, record["config"], base, grid.endpoint_trials(space))
    hydra = [
        "hydra/sweeper=optuna",
        *sw.launcher_overrides(launcher, n_jobs, threads),
        f"hydra.sweeper.direction={settings['direction']}",
        f"hydra.sweeper.n_trials={trials}",
        f"hydra.sweeper.n_jobs={batch}",
        f"hydra.sweeper.sampler.seed={seed}",
        f"hydra.sweeper.sampler.n_startup_trials={settings['startup']}",
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


__all__ = ["run_search", "best", "plot", "violation", "penalised"]
