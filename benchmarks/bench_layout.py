"""Encoder memory layout: channels_first vs channels_last, fp32 and bf16, bare VGG pass and Gatys step.

    python benchmarks/bench_layout.py [--sizes 256 512] [--precisions fp32 bf16] [--repeats 3] [--steps 3]

All variants live in one process and are timed round-robin (each round times every variant once, ``--steps``
calls each, median over rounds), so that the load of a shared machine hits them alike; compare the ratios, not the
absolute times. Prints one row per (size, precision): bare VGG-19 fwd+bwd to relu5_1 and Gatys L-BFGS step in each
layout, and channels_last / channels_first. bf16 is skipped where the CPU has no bf16 units.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_step import gatys_step  # noqa: E402
from common import bare_vgg_step, machine, runnable_precisions  # noqa: E402

from semstyle.core.encoder import VGG19Encoder  # noqa: E402
from semstyle.core.image import load_image, resize  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = ("channels_first", "channels_last")


def seconds(fn, calls: int) -> float:
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--repeats", type=int, default=3, help="rounds; each times every variant once")
    p.add_argument("--steps", type=int, default=3, help="calls per variant per round")
    p.add_argument("--warmup", type=int, default=12, help="L-BFGS steps before timing (history 10 full)")
    args = p.parse_args(argv)
    precisions = runnable_precisions(args.precisions, "cpu")
    content_full = load_image(ROOT / "assets/content/tubingen.jpg")
    style_full = load_image(ROOT / "assets/styles/starry_night.jpg")
    variants = {}  # (size, precision, layout, kind) -> callable
    encoders = {
        (q, lay): VGG19Encoder("avg", q, "cpu", layout=lay, conv="native") for q in precisions for lay in LAYOUTS
    }
    for size in args.sizes:
        content, style = resize(content_full, size), resize(style_full, size)
        for (q, lay), enc in encoders.items():
            variants[size, q, lay, "bare"] = bare_vgg_step(enc, content)
            step = gatys_step(enc, content, style)
            for _ in range(args.warmup):
                step()
            variants[size, q, lay, "step"] = step
    times = {key: [] for key in variants}
    for _ in range(args.repeats):
        for key, fn in variants.items():
            fn()  # one untimed call: caches warm after the other variants ran
            times[key].append(seconds(fn, args.steps))
    med = {key: statistics.median(v) for key, v in times.items()}
    spread = {key: (min(v), max(v)) for key, v in times.items()}
    print(f"# {machine()}; {args.repeats} rounds x {args.steps} calls, medians (min-max)")
    print(
        "| size | precision | bare CF (s) | bare CL (s) | bare CL/CF | step CF (s) | step CL (s) | step CL/CF "
        "| step CL / bare CF |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        for q in precisions:
            b_cf, b_cl = med[size, q, LAYOUTS[0], "bare"], med[size, q, LAYOUTS[1], "bare"]
            s_cf, s_cl = med[size, q, LAYOUTS[0], "step"], med[size, q, LAYOUTS[1], "step"]
            rng = lambda key: "{:.3f}-{:.3f}".format(*spread[key])  # noqa: E731
            print(
                f"| {size} | {q} | {b_cf:.3f} ({rng((size, q, LAYOUTS[0], 'bare'))}) "
                f"| {b_cl:.3f} ({rng((size, q, LAYOUTS[1], 'bare'))}) | {b_cl / b_cf:.2f} "
                f"| {s_cf:.3f} ({rng((size, q, LAYOUTS[0], 'step'))}) "
                f"| {s_cl:.3f} ({rng((size, q, LAYOUTS[1], 'step'))}) | {s_cl / s_cf:.2f} | {s_cl / b_cf:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
