"""Gatys step time relative to a bare VGG-19 forward+backward (to relu5_1) at the same size.

    python benchmarks/bench_step.py [--sizes 256 512] [--precisions fp32 bf16] [--repeats 5] [--profile]

A "step" is one L-BFGS iteration of the Gatys objective (content conv4_2, Gram on conv1_1..conv5_1): one
forward+backward through the encoder plus the losses and the optimiser update. ``--profile`` adds, per row, the
operators that take the most time in five bare passes and in five steps (``torch.profiler``, self CPU time), so
that what a step adds to the bare pass can be read off.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import semstyle  # noqa: F401  (before torch: it sets GOMP_SPINCOUNT for NNPACK's threads)

# isort: split
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bare_vgg_step, interleaved_medians, lbfgs_step, machine, runnable_precisions  # noqa: E402

from semstyle.core.encoder import vgg19_encoder  # noqa: E402
from semstyle.core.image import load_image, resize  # noqa: E402
from semstyle.engine import Objective  # noqa: E402
from semstyle.losses import ContentLoss, GramLoss  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def gatys_step(encoder, content, style):
    content_term, style_term = ContentLoss(), GramLoss()
    objective = Objective(encoder, {"content": (content_term, 1e-3), "style": (style_term, 1e-6)})
    with torch.no_grad():
        content_term.set_target(objective.features(content, content_term.layers))
        style_term.set_target(objective.features(style, style_term.layers))
    return lbfgs_step(objective, content.clone().requires_grad_(True))


def profile(functions: dict, calls: int = 5, rows: int = 12) -> None:
    """The ``rows`` operators with the most self CPU time over ``calls`` calls of each function, as Markdown."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    for name, fn in functions.items():
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(calls):
                fn()
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:rows]
        print(f"\n{name} ({calls} calls)\n\n| operator | self CPU ms per call | calls per call |\n|---|---|---|")
        for e in events:
            print(f"| {e.key} | {e.self_cpu_time_total / 1e3 / calls:.1f} | {e.count / calls:g} |")
        print()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--profile", action="store_true", help="print each row's busiest operators (torch.profiler)")
    args = p.parse_args(argv)
    content_full = load_image(ROOT / "assets/content/tubingen.jpg")
    style_full = load_image(ROOT / "assets/styles/starry_night.jpg")
    print(f"# {machine()}")
    precisions = runnable_precisions(args.precisions, args.device)
    print("| size | precision | bare VGG fwd+bwd (s) | Gatys step (s) | ratio |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        for precision in precisions:
            encoder = vgg19_encoder("avg", precision, args.device)
            content = resize(content_full, size).to(encoder.device)
            style = resize(style_full, size).to(encoder.device)
            step_fn = gatys_step(encoder, content, style)
            for _ in range(25):  # fill L-BFGS's history, whose length is part of the step cost
                step_fn()
            times = interleaved_medians({"bare": bare_vgg_step(encoder, content), "step": step_fn}, args.repeats)
            bare, step = times["bare"], times["step"]
            print(f"| {size} | {precision} | {bare:.3f} | {step:.3f} | {step / bare:.2f} |", flush=True)
            if args.profile:
                profile({"bare": bare_vgg_step(encoder, content), "step": step_fn})


if __name__ == "__main__":
    main()
