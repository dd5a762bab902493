"""Sweeps: one base config, a grid of overrides, one ordinary run folder per combination, on a Hydra launcher.

    >>> from semstyle.experiments.sweep import run_sweep, load_sweep
    >>> folder = run_sweep("configs/default.yaml", {"style_weight": ["1e-7", "1e-6"]}, "runs/sw",
    ...                    overrides=["size=64", "steps=5"])  # doctest: +SKIP
    >>> [r["state"] for r in load_sweep(folder)["runs"]]  # doctest: +SKIP
    ['done', 'done']

A sweep folder holds ``sweep.json`` (the base config, the base overrides, the swept values, the launcher, and each
run's name, folder, values, state, error and wall time; rewritten atomically, under a lock, at every change of
state) and ``runs/<name>/``, each an ordinary run folder written by :func:`semstyle.api.run`. Hydra's own files
(its primary config, empty job folders, submitit's logs) stay in ``SWEEP/.hydra``.

How it drives Hydra: the values are parsed with Hydra's override grammar (:mod:`.grid`, which also checks every run's
config without torch; ``a,b,c`` choices and ``range(...)``; a key with one value is a base override) and expanded in the
order given, the first key varying slowest, as Hydra's basic sweeper does. The jobs are then handed to the chosen Hydra
launcher (``hydra/launcher=joblib``, ``submitit_local``, ``submitit_slurm``, ``ray``, or Hydra's in-process ``basic``)
exactly as a Hydra sweeper hands them over (:meth:`hydra.plugins.launcher.Launcher.launch`); only the runs that are not
finished are handed over, which is why this module plays the sweeper's part instead of using Hydra's basic sweeper.
Every job is :func:`sweep_job`: it reads its values back from the job config Hydra composed, runs
:func:`semstyle.api.run` into ``runs/<name>`` (``resume=true`` when an interrupted ``runs/<name>.partial`` is there) and
records the outcome.

Overrides that start with ``hydra.`` go to Hydra, e.g. ``hydra.launcher.partition=gpu`` or
``hydra.launcher.ray.init.address=auto``.
"""

from __future__ import annotations

import errno
import fcntl
import importlib.util
import json
import os
import shlex
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch
from hydra import initialize_config_dir
from hydra._internal.callbacks import Callbacks
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.errors import HydraException
from hydra.types import HydraContext, RunMode
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .. import api
from ..conf.checks import check_sweep_folder
from ..conf.vocab import SWEEP_FILE
from ..core.image import atomic_write
from ..engine import resources
from ..errors import ConfigError, SemstyleError, check
from .grid import META, RUNS_DIR, _check_base, _describe, _normalise, _one_line, combinations, run_overrides, validate

HYDRA_DIR = ".hydra"  # Hydra's primary config, its job folders and submitit's logs: out of the user's way
PRIMARY = "sweep"  # Hydra's primary config: SWEEP/.hydra/sweep.yaml

# name -> (the module Hydra discovers it in, what to install); "basic" is Hydra's own: one job after another, here
LAUNCHERS: dict[str, tuple[str | None, str | None]] = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher"),
    "ray": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher and ray"),
    "basic": (None, None),
}
LOCAL = ("joblib", "submitit_local", "basic")  # every job of these runs on this machine


def _command() -> str:
    """The command line that started this invocation (recorded in ``sweep.json``; each run's ``config.yaml`` names
    it too)."""
    return shlex.join(["semstyle", *sys.argv[1:]])


# -- the sweep folder ------------------------------------------------------------------------------------------------


def load_sweep(path) -> dict:
    """``sweep.json`` of a sweep folder (or the file itself) as a dict; run folders are relative to the sweep."""
    file = check_sweep_folder(path)
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{file}: cannot be read ({_one_line(e)})") from None
    check(isinstance(data, dict) and isinstance(data.get("runs"), list), f"{file}: has no list of runs")
    return data


def _write(folder: Path, data: dict) -> None:
    text = json.dumps(data, indent=1) + "\n"
    atomic_write(folder / SWEEP_FILE, lambda tmp: Path(tmp).write_text(text))


@contextmanager
def _flock(path: Path) -> Iterator[int]:
    """An exclusive ``flock`` on ``path`` (made if missing), waiting for it; a file system without locks (some NFS
    mounts) gets none, as :class:`semstyle.engine.runs.RunDir` does."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
        yield fd
    finally:
        os.close(fd)  # drops the lock


def update_runs(folder, change: Callable[[dict], None]) -> dict:
    """Read ``sweep.json``, apply ``change(data)`` and write it back, under the sweep's lock: jobs in other
    processes (or on other machines sharing the folder) update their own entries concurrently."""
    folder = Path(folder)
    with _flock(folder / ".sweep.lock"):
        data = load_sweep(folder)
        change(data)
        _write(folder, data)
    return data


def set_run(folder, name: str, **fields) -> None:
    """Update (or add) run ``name``'s entry in ``sweep.json``."""

    def change(data: dict) -> None:
        for run in data["runs"]:
            if run["name"] == name:
                run.update(fields)
                return
        data["runs"].append({"name": name, "folder": f"{RUNS_DIR}/{name}", **fields})
        data["runs"].sort(key=lambda run: run["name"])  # trials start in any order; the file lists them in order

    update_runs(folder, change)


def finished(run_dir: Path) -> bool:
    """A run folder is complete once it has its final name (:class:`semstyle.engine.runs.RunDir` renames
    ``.partial`` only at the end); an empty folder made beforehand does not count."""
    return run_dir.is_dir() and any(run_dir.iterdir())


def partial(run_dir: Path) -> Path:
    return run_dir.with_name(run_dir.name + ".partial")


@contextmanager
def _sweep_lock(folder: Path) -> Iterator[None]:
    """One process drives a sweep folder at a time (its jobs may be anywhere)."""
    lock = folder / ".sweep.run.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                owner = os.read(fd, 32).decode(errors="replace").strip() or "?"
                raise ConfigError(f"{folder}: this sweep is being run by process {owner}; wait for it to end") from None
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


# -- Hydra -----------------------------------------------------------------------------------------------------------


def cores() -> int:
    """CPU cores this process may use (its affinity mask: taskset, cgroups, a SLURM allocation)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def check_launcher(launcher: str) -> None:
    check(
        launcher in LAUNCHERS,
        f"--launcher: unknown launcher {launcher!r}; available: {', '.join(LAUNCHERS)}",
    )
    module, package = LAUNCHERS[launcher]
    if module is not None:
        check(
            importlib.util.find_spec(module) is not None,
            f"--launcher {launcher}: needs {package}; pip install 'semstyle[experiments]'",
            SemstyleError,
        )
    if launcher == "ray":
        check(
            importlib.util.find_spec("ray") is not None,
            "--launcher ray: needs ray; pip install 'semstyle[experiments]'",
            SemstyleError,
        )


def launcher_overrides(launcher: str, n_jobs: int, threads: int, given=()) -> list[str]:
    """Hydra overrides that select ``launcher`` and size it (``n_jobs`` runs at once, ``threads`` each), then the
    user's own ``hydra.*`` settings ``given``, which win over ours."""
    out = [f"hydra/launcher={launcher}"]
    if launcher == "joblib":
        out.append(f"hydra.launcher.n_jobs={n_jobs}")
    elif launcher == "ray" and threads:
        # Ray schedules a task where `num_cpus` are free: at most cores // threads runs share a machine
        out.append(f"+hydra.launcher.ray.remote.num_cpus={threads}")
    elif launcher == "submitit_slurm":
        out.append(f"hydra.launcher.array_parallelism={n_jobs}")
    keys = {item.split("=", 1)[0].lstrip("+") for item in given}
    return [item for item in out if item.split("=", 1)[0].lstrip("+") not in keys] + list(given)


def write_primary(folder: Path, keys, meta: dict) -> Path:
    """Hydra's primary config for the jobs: a null placeholder for every swept key (so that a job's ``key=value``
    overrides it), the sweep's node, and Hydra kept quiet and inside ``SWEEP/.hydra``."""
    conf_dir = folder / HYDRA_DIR
    node = OmegaConf.create(
        {
            "defaults": ["_self_", {"override hydra/hydra_logging": "none"}, {"override hydra/job_logging": "none"}],
            "hydra": {
                "output_subdir": None,  # no per-job copy of Hydra's config: the run folder has config.yaml
                "job": {"chdir": False, "name": "semstyle"},
                "run": {"dir": str(conf_dir)},
                "sweep": {"dir": str(conf_dir), "subdir": "jobs/${hydra.job.num}"},
            },
            META: meta,
        }
    )
    for key in keys:
        OmegaConf.update(node, key, None, force_add=True)
    path = conf_dir / f"{PRIMARY}.yaml"
    text = OmegaConf.to_yaml(node)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return conf_dir


@contextmanager
def hydra_session(conf_dir: Path):
    """Hydra initialised on ``conf_dir`` (the Python API's :func:`hydra.initialize_config_dir`); yields Hydra."""
    with initialize_config_dir(config_dir=str(conf_dir.resolve()), version_base="1.3", job_name="semstyle"):
        yield GlobalHydra.instance().hydra


def _hydra_error(e: BaseException) -> ConfigError:
    """Hydra's error (and its cause: "could not be converted to Integer") on one line, without its search path."""
    parts = []
    while e is not None and len(parts) < 2:
        lines = []
        for line in str(e).splitlines():
            if line.startswith("Config search path") or line.startswith("    full_key") or line.startswith("full_key"):
                break
            if line.strip() and not line.startswith("To append"):
                lines.append(line.strip())
        if lines:
            parts.append(_one_line("; ".join(lines)))
        e = e.__cause__
    return ConfigError(f"hydra: {parts[0]}" + (f" ({parts[1]})" if len(parts) > 1 else "") if parts else "hydra: error")


def check_hydra(keys, overrides: list[str]) -> None:
    """Compose Hydra's config once with ``overrides`` (launcher, sweeper and their settings) on a scratch primary
    config: a typo in them is bad input, reported before the sweep folder is touched."""
    with tempfile.TemporaryDirectory(prefix="semstyle-hydra-") as scratch:
        conf_dir = write_primary(Path(scratch), keys, {"folder": scratch, "threads": 1, "cwd": scratch, "run": None})
        with hydra_session(conf_dir) as hydra:
            try:
                hydra.compose_config(PRIMARY, overrides, run_mode=RunMode.MULTIRUN, with_log_configuration=False)
            except (HydraException, OmegaConfBaseException) as e:
                raise _hydra_error(e) from None


def launch(conf_dir: Path, task, hydra_overrides: list[str], jobs: list[list[str]], batch: int | None = None):
    """Hand ``jobs`` (each a list of ``key=value`` Hydra overrides) to the launcher the overrides select, in
    batches of ``batch`` (all at once when None), as Hydra's basic sweeper does; returns their JobReturns."""
    with hydra_session(conf_dir) as hydra:
        try:
            cfg = hydra.compose_config(
                PRIMARY, hydra_overrides, run_mode=RunMode.MULTIRUN, with_log_configuration=False
            )
            HydraConfig.instance().set_config(cfg)
            context = HydraContext(config_loader=hydra.config_loader, callbacks=Callbacks(cfg))
            launcher = Plugins.instance().instantiate_launcher(hydra_context=context, task_function=task, config=cfg)
        except (HydraException, OmegaConfBaseException) as e:
            raise _hydra_error(e) from None
        returns = []
        step = batch or len(jobs)
        for start in range(0, len(jobs), step):
            returns += list(launcher.launch(jobs[start : start + step], initial_job_idx=start))
        return returns


def hydra_multirun(conf_dir: Path, task, overrides: list[str]):
    """Hydra's multirun (its sweeper, then its launcher) on the primary config in ``conf_dir``; check the
    overrides first with :func:`check_hydra`."""
    with hydra_session(conf_dir) as hydra:
        return hydra.multirun(PRIMARY, task, overrides, with_log_configuration=False)


# -- one job -------------------------------------------------------------------------------------------------------


def _select(container: dict, key: str):
    node = container
    for part in key.split("."):
        node = node[part]
    return node


def job_values(cfg, keys) -> tuple[dict, dict]:
    """``(values, texts)`` of this job's swept keys: the values from the job config Hydra composed, the texts as
    the job's overrides gave them."""
    container = OmegaConf.to_container(cfg, resolve=False)
    values = {key: _select(container, key) for key in keys}
    given = {}
    for item in HydraConfig.get().overrides.task:
        key, _, text = str(item).partition("=")
        given[key] = text
    return values, {key: given.get(key, json.dumps(values[key])) for key in keys}


def _error_line(e: BaseException) -> str:
    if isinstance(e, SemstyleError):
        return _one_line(e)
    return _one_line(f"{type(e).__name__}: {e}")


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` (0: the cores this process may use) for the block."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, threads or cores()))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def execute(folder: Path, name: str, values: dict, texts: dict, threads: int, cwd: str) -> dict:
    """Run (or skip, or resume) run ``name`` of the sweep in ``folder`` and record it in ``sweep.json``; never
    raises for a failed run (a failure is a state), only for an interrupt."""
    data = load_sweep(folder)
    run_dir = folder / RUNS_DIR / name
    threads = max(1, threads or cores())  # 0: the job's own allocation (a SLURM task's cores)
    if finished(run_dir):  # an earlier invocation, or another worker, finished it
        set_run(folder, name, overrides=texts, state="done", error=None)
        return {"name": name, "state": "done", "skipped": True, "threads": threads}
    resume = partial(run_dir).is_dir()
    set_run(folder, name, overrides=texts, state="running", error=None, seconds=None, threads=threads)
    previous_cwd, previous_argv = os.getcwd(), sys.argv
    if data.get("command"):  # the run's config.yaml then names the sweep's command line, not the worker's
        sys.argv = [sys.argv[0] if sys.argv else "semstyle", *shlex.split(data["command"])[1:]]
    start = time.perf_counter()
    state, error = "done", None
    try:
        if os.path.isdir(cwd):  # relative paths in the config mean what they meant where the sweep was started
            os.chdir(cwd)  # (a cluster node without that folder keeps its own: absolute paths are safer there)
        with torch_threads(threads):
            api.run(data.get("config"), run_overrides(data.get("overrides", []), values, run_dir.resolve(), resume))
    except KeyboardInterrupt:
        set_run(folder, name, state="pending", error="interrupted", seconds=round(time.perf_counter() - start, 2))
        raise
    except Exception as e:  # a failed run is recorded and does not stop the others
        state, error = "failed", _error_line(e)
        if not isinstance(e, SemstyleError):  # an internal error: keep its traceback for the bug report
            trace = "".join(traceback.format_exception(type(e), e, e.__traceback__))
            log = folder / HYDRA_DIR / "errors" / f"{name}.txt"
            atomic_write(log, lambda tmp: Path(tmp).write_text(trace))
            error += f" (traceback: {log.relative_to(folder)})"
    finally:
        os.chdir(previous_cwd)
        sys.argv = previous_argv
    seconds = round(time.perf_counter() - start, 2)
    set_run(folder, name, state=state, error=error, seconds=seconds)
    return {"name": name, "state": state, "error": error, "seconds": seconds, "threads": threads}


def sweep_job(cfg) -> dict:
    """Hydra's task function for a sweep's job: ``cfg`` is the job config Hydra composed (the swept keys and the
    sweep's node)."""
    meta = cfg[META]
    folder = Path(meta.folder)
    keys = list(load_sweep(folder)["params"])
    values, texts = job_values(cfg, keys)
    return execute(folder, str(meta.run), values, texts, int(meta.threads), str(meta.cwd))


# -- the sweep -------------------------------------------------------------------------------------------------------


def _compare(old: dict, new: dict, folder: Path) -> None:
    differ = [key for key in ("config", "overrides", "params", "search") if old.get(key) != new.get(key)]
    check(
        not differ,
        f"{folder}: holds a sweep with other {', '.join(differ)} ({SWEEP_FILE}); repeat its settings to "
        "continue it, or choose another folder",
    )


def prepare(config, params, out, overrides, launcher: str, extra: dict | None = None) -> tuple[Path, dict]:
    """Checks and the folder's ``sweep.json`` for a new or continued sweep; no run starts here."""
    check_launcher(launcher)
    params = _normalise(params)
    base, _ = _check_base(list(overrides))
    folder = Path(out)
    if config is not None:
        check(Path(config).is_file(), f"config file {config}: not found")
        config = str(Path(config).resolve())
    record = {"config": config, "overrides": base, "params": params, **(extra or {})}
    file = folder / SWEEP_FILE
    if file.is_file():
        _compare(load_sweep(folder), record, folder)
    else:
        # a new sweep goes into a new or empty folder, or one holding only what a sweep writes (run folders made
        # beforehand with `semstyle run out_dir=SWEEP/runs/NNN` count as this sweep's runs)
        ours = {RUNS_DIR, HYDRA_DIR, ".sweep.lock", ".sweep.run.lock"}
        check(
            not (folder.exists() and (not folder.is_dir() or any(p.name not in ours for p in folder.iterdir()))),
            f"{folder}: exists and is not a sweep folder (no {SWEEP_FILE}); choose another folder",
        )
    return folder, record


def run_sweep(
    config,
    params: dict[str, list[str]],
    out,
    launcher: str = "joblib",
    overrides=(),
    n_jobs: int | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Run every combination of ``params`` (``{key: [value, ...]}``, values in Hydra's grammar) on ``config`` plus
    ``overrides`` into ``out/runs/<name>``, on a Hydra ``launcher``; returns the sweep folder.

    Finished runs are skipped, interrupted ones resumed. A failed run does not stop the others: its state is
    ``failed`` in ``sweep.json`` with its error (see :func:`failures`). Bad input raises a :class:`ConfigError`
    before any run starts. ``n_jobs`` runs at once (default: the cores, at most the runs left, at most what the
    memory holds), each with ``cores // n_jobs`` torch threads.
    """
    log = log or (lambda message: None)
    folder, record = prepare(config, params, out, overrides, launcher)
    params = record["params"]
    check(n_jobs is None or (isinstance(n_jobs, int) and n_jobs >= 1), f"--jobs: must be >= 1, got {n_jobs!r}")
    _, hydra_settings = _check_base(list(overrides))
    base = record["overrides"]
    combos = combinations(params)
    validate(record["config"], base, combos)
    left = sum(not finished(folder / RUNS_DIR / name) for name, _, _ in combos)
    n_jobs, threads = plan_jobs(launcher, n_jobs, max(1, left), record["config"], base, combos)
    hydra_overrides = launcher_overrides(launcher, n_jobs, threads, hydra_settings)
    if left:
        check_hydra(params, hydra_overrides)

    folder.mkdir(parents=True, exist_ok=True)
    with _sweep_lock(folder):
        old = {r["name"]: r for r in load_sweep(folder)["runs"]} if (folder / SWEEP_FILE).is_file() else {}
        runs = []
        for name, t, _ in combos:
            run_dir = folder / RUNS_DIR / name
            entry = {"name": name, "folder": f"{RUNS_DIR}/{name}", "overrides": t, "state": "pending", "error": None}
            entry["seconds"] = old.get(name, {}).get("seconds")
            if finished(run_dir):
                entry["state"] = "done"
            runs.append(entry)
        _write(folder, {**record, "launcher": launcher, "command": _command(), "runs": runs})
        todo = [(name, t) for name, t, _ in combos if not finished(folder / RUNS_DIR / name)]
        resumed = sum(partial(folder / RUNS_DIR / name).is_dir() for name, _ in todo)
        log(
            f"sweep {folder}: {len(combos)} runs, {len(combos) - len(todo)} finished, {len(todo)} to run"
            + (f" ({resumed} resumed from runs/NNN.partial)" if resumed else "")
        )
        if not todo:
            return folder
        log(f"launcher {launcher}: {n_jobs} at a time, {threads or 'the job allocation of'} torch thread(s) each")
        meta = {"folder": str(folder.resolve()), "threads": threads, "cwd": os.getcwd(), "run": None}
        conf_dir = write_primary(folder, params, meta)
        jobs = [[f"{k}={v}" for k, v in t.items()] + [f"{META}.run='{name}'"] for name, t in todo]
        batch = n_jobs if launcher == "submitit_local" else None  # submitit's local executor starts all at once
        try:
            returns = launch(conf_dir, sweep_job, hydra_overrides, jobs, batch)
        except KeyboardInterrupt:
            _settle(folder, "interrupted", "pending")
            raise KeyboardInterrupt(f"sweep {folder}: run the same command again to resume") from None
        except SemstyleError:
            raise
        except Exception as e:  # the launcher itself failed (a worker killed, a cluster unreachable)
            _settle(folder, f"launcher {launcher} failed: {_error_line(e)}", "failed")
            return folder
        _record_returns(folder, [name for name, _ in todo], returns)
    return folder


def plan_jobs(launcher: str, n_jobs, todo: int, config, base, combos) -> tuple[int, int]:
    """``(runs at once, torch threads per run)``: ``cores // n_jobs`` threads so that parallel runs do not
    oversubscribe the CPU; on SLURM each job uses its own allocation (threads 0: decided in the job)."""
    if launcher == "basic":
        return 1, cores()
    if launcher == "submitit_slurm":
        return n_jobs or todo, 0
    if n_jobs is None:
        n_jobs = min(cores(), todo)
        if launcher in LOCAL:
            n_jobs = min(n_jobs, _memory_limit(config, base, combos))
    return n_jobs, max(1, cores() // n_jobs)


def _memory_limit(config, base, combos) -> int:
    """How many of the largest run fit in the available memory at once (the engine's per-run estimate)."""
    available = resources.available_bytes()
    if available is None:
        return cores()
    need = 0.0
    for name, _, values in combos:
        cfg = OmegaConf.to_container(api.load_config(config, run_overrides(base, values, Path(name))), resolve=True)
        need = max(need, resources.estimate_bytes(cfg, *resources.content_shape(cfg)))
    return max(1, int(available // max(need, 1.0)))


def _settle(folder: Path, error: str, state: str) -> None:
    """Runs left ``running`` or ``pending`` after the launcher returned abnormally."""

    def change(data: dict) -> None:
        for run in data["runs"]:
            if finished(folder / run["folder"]):
                run["state"], run["error"] = "done", None
            elif run["state"] in ("running", "pending"):
                run["state"], run["error"] = state, error

    update_runs(folder, change)


def _record_returns(folder: Path, names: list[str], returns) -> None:
    """A job that raised past :func:`execute` (Hydra composing its config, a worker's import) is a failed run."""
    failed = {}
    for name, ret in zip(names, returns):
        if getattr(ret.status, "name", "") != "COMPLETED":
            failed[name] = _error_line(ret._return_value) if ret._return_value is not None else "the job failed"

    def change(data: dict) -> None:
        for run in data["runs"]:
            if run["name"] in failed:
                run["state"], run["error"] = "failed", failed[run["name"]]
            elif run["name"] in names and run["state"] in ("running", "pending"):
                done = finished(folder / run["folder"])
                run["state"], run["error"] = ("done", None) if done else ("failed", "the job ended without a result")

    update_runs(folder, change)


def failures(folder) -> list[dict]:
    """The runs of a sweep that did not finish (failed, or never ran)."""
    return [r for r in load_sweep(folder)["runs"] if r.get("state") != "done"]


def table(runs: list[dict], columns=("name", "state", "seconds", "overrides", "error")) -> str:
    """A plain-text table of runs, one line each."""
    rows = []
    for run in runs:
        row = []
        for c in columns:
            value = run.get(c)
            if c == "overrides":
                value = _describe(value or {})
            row.append("" if value is None else str(value))
        rows.append(row)
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


__all__ = ["run_sweep", "load_sweep", "failures", "table", "LAUNCHERS"]
