"""``semstyle sweep`` and ``semstyle search``: many runs of one config, on a Hydra launcher.

    semstyle sweep configs/default.yaml style_weight=1e-7,1e-6,1e-5 content_layers=[conv4_2],[conv5_2] size=256
    semstyle sweep ... --launcher submitit_slurm hydra.launcher.partition=gpu     # the same sweep on SLURM
    semstyle search configs/default.yaml --minimize style_distance --where "ssim>=0.4" --trials 16 \\
        "style_weight=tag(log,interval(1e-7,1e-4))" --seed 0

Exit codes: 0 every run finished, 1 some run failed (a table of failures on stderr), 2 bad input (one line, before
any run starts), 130 interrupted (run the same command again to continue).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..conf.vocab import PRECISIONS, SWEEP_FILE
from ..interrupts import deferred
from .commands import base_config, split_config

LAUNCHER_NAMES = ("joblib", "submitit_local", "submitit_slurm", "ray", "basic")  # semstyle.experiments.sweep


def _modules(search: bool = False):
    """``(sweep, search)``: torch, Hydra and the methods load when the command runs (see commands._api), and
    Optuna (2.4 s) only for ``semstyle search``."""
    with deferred():
        from ..experiments import sweep

        if search:
            from ..experiments import search as search_module
    return sweep, (search_module if search else None)


def _out(args, kind: str) -> str:
    return args.out or f"runs/{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def _report(sweep, folder) -> int:
    data = sweep.load_sweep(folder)
    print(sweep.table(data["runs"], ("name", "state", "seconds", "overrides")))
    print(f"sweep folder: {folder}")
    failed = sweep.failures(folder)
    if failed:
        print(f"semstyle: {len(failed)} of {len(data['runs'])} runs failed:", file=sys.stderr)
        print(sweep.table(failed, ("name", "overrides", "error")), file=sys.stderr)
        return 1
    return 0


def _log(message: str) -> None:
    print(f"semstyle: {message}", file=sys.stderr)


def _grid():
    # Hydra's override parser and the configs, not torch: a bad grid answers before torch loads
    from ..experiments import grid

    return grid


def _sweep(args) -> int:
    grid = _grid()
    config, overrides = split_config(args.config, args.overrides)
    params, base = grid.split_overrides(overrides)
    if config is None and not overrides and args.out and (Path(args.out) / SWEEP_FILE).is_file():
        # `semstyle sweep --out DIR`: continue the sweep recorded there
        sweep, _ = _modules()
        data = sweep.load_sweep(args.out)
        config, params, base = data.get("config"), data["params"], data.get("overrides", [])
    else:
        config = base_config(config, overrides)
    base = list(base) + _run_options(args)
    grid.check_grid(config, params, base)
    sweep, _ = _modules()
    folder = sweep.run_sweep(config, params, _out(args, "sweep"), args.launcher, base, args.jobs, log=_log)
    return _report(sweep, folder)


def _search(args) -> int:
    grid = _grid()
    config, overrides = split_config(args.config, args.overrides)
    config = base_config(config, overrides)
    space, base = {}, []
    for item in overrides + _run_options(args):
        override = grid.parse_override(item)
        if override.is_sweep_override():
            space[override.get_key_element()] = item.split("=", 1)[1]
        else:
            base.append(item)
    options = ("minimize", "maximize", "where", "trials", "seed", "batch", "startup", "metric_size")
    settings = {name: getattr(args, name) for name in options}
    grid.check_search(config, space, base, **settings)
    sweep, search = _modules(search=True)
    folder = search.run_search(
        config, space, _out(args, "search"), launcher=args.launcher, overrides=base, n_jobs=args.jobs, log=_log,
        **settings,
    )  # fmt: skip
    code = _report(sweep, folder)
    data = sweep.load_sweep(folder)
    top = search.best(folder)
    if top is None:
        where = " and ".join(data["search"]["where"])
        print(f"semstyle: {f'no trial met {where}' if where else 'no trial finished'}", file=sys.stderr)
        return 1
    objective = f"{data['search']['objective']}={top['objective']:.6g}"
    print(f"best: {top['name']} ({objective}; {grid._describe(top['overrides'])})")
    print(f"result: {folder / top['folder'] / 'output.png'}")
    print(f"plot: {folder / search.PLOT}")
    return code


def _common(p, example: str) -> None:
    p.add_argument("config", nargs="?", help="config file (default: the bundled configs/default.yaml)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=example)
    p.add_argument(
        "--launcher",
        default="joblib",
        metavar="NAME",
        help=f"Hydra launcher: {', '.join(LAUNCHER_NAMES)} (default joblib: parallel on this machine); its "
        "settings are hydra.launcher.KEY=VALUE overrides",
    )
    p.add_argument("--jobs", type=int, help="runs at once (default: the cores, at most what the memory holds)")
    p.add_argument("--device", help="auto, cpu or cuda, for every run (config key device)")
    p.add_argument("--precision", choices=PRECISIONS, help="for every run (config key precision)")


def _run_options(args) -> list[str]:
    """``--device`` and ``--precision`` as the overrides every other command turns them into."""
    return [f"{key}={getattr(args, key)}" for key in ("device", "precision") if getattr(args, key) is not None]


def add_sweep(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a config over a grid of values (Hydra's a,b,c syntax), one run folder each, on a Hydra launcher",
    )
    _common(
        p,
        "swept values key=a,b,c or key=range(1,5); a key with one value applies to every run; "
        "hydra.launcher.KEY=VALUE sets the launcher",
    )
    p.add_argument("--out", help="sweep folder (default runs/sweep-<time>); run again with the same --out to continue")
    p.set_defaults(func=_sweep)


def add_search(sub) -> None:
    p = sub.add_parser(
        "search",
        help="search numeric keys for the best metric under constraints (Optuna TPE through Hydra)",
    )
    _common(
        p,
        "search ranges key=interval(lo,hi), key=tag(log,interval(lo,hi)), key=a,b,c; a key with one value applies "
        "to every trial",
    )
    goal = p.add_mutually_exclusive_group(required=True)
    goal.add_argument("--minimize", metavar="METRIC", help="metric to minimise, e.g. style_distance")
    goal.add_argument("--maximize", metavar="METRIC", help="metric to maximise, e.g. ssim")
    p.add_argument(
        "--where", action="append", default=[], metavar="COND", help='constraint, e.g. "ssim>=0.4" (repeatable)'
    )
    p.add_argument("--trials", type=int, default=8, help="runs in all (default 8)")
    p.add_argument("--seed", type=int, default=0, help="the sampler's seed (default 0)")
    p.add_argument("--batch", type=int, default=2, help="trials asked at a time (default 2, as Hydra's optuna sweeper)")
    p.add_argument("--startup", type=int, help="random trials before TPE models (default half the trials, at most 10)")
    p.add_argument("--metric-size", type=int, help="long side the metrics are computed at (default 256)")
    p.add_argument("--out", help="sweep folder (default runs/search-<time>); run again with the same --out to continue")
    p.set_defaults(func=_search)
