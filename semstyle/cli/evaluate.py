"""``semstyle eval`` (metrics of runs and sweeps) and ``semstyle report`` (a sweep's contact sheet, loss overlay
and HTML page). The work is in :mod:`semstyle.experiments.metrics` and :mod:`semstyle.experiments.report`; torch
loads only when a command runs."""

from __future__ import annotations

from pathlib import Path

from ..conf.checks import check_sweep_folder
from ..conf.vocab import METRIC_SIZE
from ..errors import check
from ..interrupts import deferred


def _check_size(size: int) -> None:
    check(32 <= size <= 4096, f"--size: must be in [32, 4096], got {size}")


def _eval(args) -> None:
    _check_size(args.size)
    for path in args.paths:
        check(Path(path).is_dir(), f"{path}: no such run or sweep folder")
    with deferred():
        from ..experiments import metrics

    content, style = args.against or (None, None)
    rows = metrics.collect(
        args.paths, content, style, size=args.size, device=args.device, out=args.out, force=args.force
    )
    print(metrics.markdown(rows) if rows else "no finished runs to score\n", end="")
    for path in args.paths:
        if metrics.is_sweep(path):
            print(f"sweep table: {Path(path) / 'metrics.csv'}")
    if args.out:
        print(f"table: {Path(args.out) / 'metrics.csv'}")


def _report(args) -> None:
    _check_size(args.size)
    check_sweep_folder(args.sweep)  # before torch loads
    with deferred():
        from ..experiments import report

    page = report.report(args.sweep, args.rows, args.cols, cell=args.cell, size=args.size, device=args.device)
    for name in ("sheet.png", "losses.png", "metrics.csv", "metrics.md"):
        print(f"{name}: {page.parent / name}")
    print(f"report: {page}")


def add_eval(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="score finished runs (SSIM, PSNR, content/style/colour/perceptual distances, ...): metrics.json per "
        "run, metrics.csv and metrics.md per sweep",
    )
    p.add_argument("paths", nargs="+", metavar="RUN_OR_SWEEP", help="run folders and sweep folders")
    p.add_argument(
        "--against",
        nargs=2,
        metavar=("CONTENT", "STYLE"),
        help="score against these images instead of those each run's config names",
    )
    p.add_argument(
        "--size", type=int, default=METRIC_SIZE, help=f"long side images are scored at (default {METRIC_SIZE})"
    )
    p.add_argument("--device", default="cpu", help="where the reference VGG-19 runs (default cpu; fp32 always)")
    p.add_argument("--out", help="also write metrics.csv and metrics.md of all the given runs into this folder")
    p.add_argument("--force", action="store_true", help="score again runs that already have metrics.json")
    p.set_defaults(func=_eval)


def add_report(sub) -> None:
    r = sub.add_parser(
        "report",
        help="a sweep's contact sheet (sheet.png), loss overlay (losses.png), metrics tables and report.html",
    )
    r.add_argument("sweep", metavar="SWEEP", help="a sweep folder (with sweep.json)")
    r.add_argument("--rows", metavar="KEY", help="swept key down the sheet (default: the first swept key)")
    r.add_argument("--cols", metavar="KEY", help="swept key across (default: the others)")
    r.add_argument("--cell", type=int, default=128, help="px per picture in the contact sheet (default 128)")
    r.add_argument("--size", type=int, default=METRIC_SIZE, help=f"long side of the metrics (default {METRIC_SIZE})")
    r.add_argument("--device", default="cpu", help="where the reference VGG-19 runs (default cpu)")
    r.set_defaults(func=_report)
