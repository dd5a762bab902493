"""STROTSS step time relative to a bare VGG-19 forward+backward, and the wall time of the default schedule.

    python benchmarks/bench_strotss.py [--sizes 256 512] [--precisions bf16 fp32] [--repeats 5]
                                       [--schedule 64 128 256 512] [--steps 250] [--full]

A "step" is one RMSprop step of the default STROTSS objective (1024 output locations, 5000 style locations, one
region) on a 5-level Laplacian pyramid: the pyramid reconstruction, one encoder pass to relu5_3 with backward,
hypercolumn sampling, the self-similarity, relaxed-EMD, moment and colour terms, and the update. The reference
is benchmarks/common.py's bare VGG step (forward+backward to relu5_1); STROTSS reads two more convs (relu5_3), so
a bare pass to relu5_3 is shown too.

Schedule: by default each scale's step time is measured (``--repeats`` steps after warm-up) and multiplied by
``--steps`` (plus the measured per-scale target set-up): an extrapolation, labelled as such. ``--full`` runs the
whole schedule end to end instead.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import semstyle  # noqa: F401  (before torch: it sets GOMP_SPINCOUNT for NNPACK's threads)

# isort: split
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bare_vgg_step, machine, median_time, peak_rss_mib, runnable_precisions  # noqa: E402

from semstyle.conf.strotss import StrotssConfig  # noqa: E402
from semstyle.core.encoder import vgg19_encoder  # noqa: E402
from semstyle.core.image import load_image  # noqa: E402
from semstyle.core.pyramid import LaplacianPyramid  # noqa: E402
from semstyle.engine import Objective, make_optimizer  # noqa: E402
from semstyle.methods.strotss import initial_image, make_objective, set_scale_targets  # noqa: E402

DEFAULTS = StrotssConfig()

ROOT = Path(__file__).resolve().parents[1]


def strotss_step(objective: Objective, start: torch.Tensor):
    pyramid = LaplacianPyramid(start, DEFAULTS.pyramid_levels)
    opt = make_optimizer(DEFAULTS.optimizer, pyramid.parameters(), DEFAULTS.lr)

    def step():
        opt.zero_grad(set_to_none=True)
        total, _ = objective(pyramid())
        total.backward()
        opt.step()

    return step


def set_up(encoder, content_full, style_full, long_side):
    """The method's objective with its targets at ``long_side`` (as its first scale), the start image, and the
    seconds the targets took."""
    objective = make_objective(encoder, DEFAULTS)
    t = time.perf_counter()
    content, style = set_scale_targets(objective, content_full, style_full, long_side, 0, DEFAULTS)
    return objective, initial_image(DEFAULTS.init, content, style), time.perf_counter() - t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--precisions", nargs="+", default=["bf16", "fp32"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--schedule",
        type=int,
        nargs="*",
        default=[64, 128, 256, 512],
        help="long sides of the schedule to time (empty: skip)",
    )
    p.add_argument("--steps", type=int, default=DEFAULTS.steps, help="steps per scale of the timed schedule")
    p.add_argument("--schedule-precision", default="auto")
    p.add_argument("--full", action="store_true", help="run the schedule end to end instead of extrapolating")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    content_full = load_image(DEFAULTS.content)
    style_full = load_image(DEFAULTS.style)
    print(f"# {machine()}")
    precisions = runnable_precisions(args.precisions, args.device)
    if args.sizes:
        print(
            "| size | precision | bare VGG to relu5_1 (s) | bare to relu5_3 (s) | STROTSS step (s) | ratio vs relu5_1 | vs relu5_3 |"
        )
        print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        for precision in precisions:
            encoder = vgg19_encoder("max", precision, args.device)
            objective, start, _ = set_up(encoder, content_full, style_full, size)
            bare = median_time(bare_vgg_step(encoder, start.to(encoder.device)), args.repeats)
            bare53 = median_time(bare_vgg_step(encoder, start.to(encoder.device), "relu5_3"), args.repeats)
            step = median_time(strotss_step(objective, start.to(encoder.device)), args.repeats)
            print(
                f"| {size} | {precision} | {bare:.3f} | {bare53:.3f} | {step:.3f} | {step / bare:.2f} | {step / bare53:.2f} |",
                flush=True,
            )
    if not args.schedule:
        return
    encoder = vgg19_encoder("max", args.schedule_precision, args.device)
    if args.full:
        from semstyle.methods.strotss import stylize

        t = time.perf_counter()
        stylize(
            content_full,
            style_full,
            size=args.schedule[-1],
            scales=args.schedule[:-1],
            steps=args.steps,
            precision=encoder.precision,
            progress=False,
        )
        print(
            f"\nfull schedule {args.schedule} x {args.steps} steps ({encoder.precision}): "
            f"{time.perf_counter() - t:.0f} s measured end to end; peak RSS {peak_rss_mib():.0f} MiB"
        )
        return
    print(f"\n| scale | set-up (s) | step (s) | {args.steps} steps (s, extrapolated) |")
    print("|---|---|---|---|")
    total = 0.0
    for long_side in args.schedule:
        objective, start, setup = set_up(encoder, content_full, style_full, long_side)
        step = median_time(strotss_step(objective, start.to(encoder.device)), args.repeats)
        total += setup + args.steps * step
        print(f"| {long_side} | {setup:.2f} | {step:.3f} | {args.steps * step:.0f} |", flush=True)
    print(
        f"\nschedule {args.schedule} x {args.steps} steps ({encoder.precision}): ~{total:.0f} s "
        f"= {total / 60:.1f} min (extrapolated from per-step medians); peak RSS {peak_rss_mib():.0f} MiB"
    )


if __name__ == "__main__":
    main()
