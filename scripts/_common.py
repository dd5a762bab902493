"""What the experiment scripts share: their options, where the images are, and one call that runs a sweep and
writes its report. Each script is ``python scripts/<name>.py [--size N] [--steps N] [--out DIR] [--launcher L]``
and writes its folder: ``sheet.png`` (the contact sheet), ``metrics.csv`` / ``metrics.md``, ``report.html`` and
the run folders (see docs/experiments.md, "The literature's experiments")."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "semstyle" / "assets"  # the bundled images (assets/ at the root links here)
SHARED = ROOT.parent / "shared" / "data"  # test material that is not redistributable (see its MANIFEST.md)
FAILED: list[str] = []  # runs that failed in this script's sweeps: the script then exits 1
CONTENT = ASSETS / "content" / "tubingen.jpg"
STYLE = ASSETS / "styles" / "starry_night.jpg"


def parser(doc: str, size: int, steps: int, out: str) -> argparse.ArgumentParser:
    """The options every script takes; ``doc`` is the script's docstring (its first line is the description)."""
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0], epilog="See docs/experiments.md.")
    p.add_argument("--size", type=int, default=size, help=f"long side of the results in px (default {size})")
    p.add_argument("--steps", type=int, default=steps, help=f"optimisation steps per scale (default {steps})")
    p.add_argument("--out", default=out, help=f"output folder (default {out}); re-running skips finished runs")
    p.add_argument(
        "--launcher",
        default="joblib",
        help="Hydra launcher: joblib (local, parallel; default), basic (one at a time, in this process), "
        "submitit_local, submitit_slurm, ray",
    )
    p.add_argument("--jobs", type=int, default=None, help="runs at once (default: the cores)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"), help="default auto")
    p.add_argument("--cell", type=int, default=160, help="px per picture in the contact sheet (default 160)")
    p.add_argument("--eval-size", type=int, default=256, help="long side the metrics are scored at (default 256)")
    return p


def base_overrides(args, scales: bool = True) -> list[str]:
    """Size, steps, precision and a coarse scale at half the size (from 128 px up, as the bundled configs do)."""
    coarse = [args.size // 2] if scales and args.size >= 128 else []
    return [
        f"size={args.size}",
        f"steps={args.steps}",
        f"scales=[{','.join(str(s) for s in coarse)}]",
        f"precision={args.precision}",
    ]


def needs_shared(*relative: str) -> list[Path]:
    """Paths under ../shared/data; when one is missing, say which and why, and end the script (exit 0: a skip)."""
    paths = [SHARED / r for r in relative]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(
            f"skipped: needs {missing[0]} (the shared test material beside the repository, which is not "
            "redistributable; see ../shared/data/MANIFEST.md)",
            file=sys.stderr,
        )
        raise SystemExit(0)
    return paths


def sweep(args, folder, config, params: dict, overrides=(), rows=None, cols=None) -> Path:
    """Run ``params`` over ``config`` into ``folder`` on the chosen launcher, then write its report (contact sheet
    with ``rows`` down and ``cols`` across, metrics tables, loss overlay, report.html). Failed runs are listed."""
    from semstyle.experiments.report import report
    from semstyle.experiments.sweep import failures, run_sweep

    folder = run_sweep(config, params, folder, launcher=args.launcher, overrides=list(overrides), n_jobs=args.jobs)
    page = report(folder, rows=rows, cols=cols, cell=args.cell, size=args.eval_size)
    for failure in failures(folder):
        FAILED.append(failure["name"])
        print(f"failed: {failure['name']} {failure['overrides']}: {failure['error']}", file=sys.stderr)
    print(f"contact sheet: {folder / 'sheet.png'}\ntable: {folder / 'metrics.md'}\nreport: {page}")
    return Path(folder)


def entry(main) -> int:
    """Run a script's ``main()``: bad input (a missing image, a wrong option) is one line on stderr and exit 2."""
    from semstyle.errors import SemstyleError

    try:
        return main()
    except SemstyleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def exit_code() -> int:
    """1 when a run of the script's sweeps failed (the report lists it), else 0."""
    return 1 if FAILED else 0


class Timer:
    """Prints how long the script took (the docs quote these times)."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            print(f"took {time.perf_counter() - self.start:.0f} s")
