"""Deformable Style Transfer: full-pipeline wall time and peak memory, and the step-time ratio against the base.

    python benchmarks/bench_dst.py pipeline [--base strotss] [--size 256] [k=v ...]   # NBB + cleaning + 3 scales
    python benchmarks/bench_dst.py steps [--sizes 64 128 256] [--bases strotss gram] [--repeats 5] [--cpu-time]

``pipeline`` runs ``semstyle run`` on the bundled astronaut / Mona Lisa pair with inline NBB keypoints (config
overrides as ``k=v``) and prints wall time, process CPU time and peak RSS. ``steps`` times one optimisation step
(objective, backward, optimiser update) of DST and of its base method alone (``warp_weight=0``) at each size.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import semstyle  # noqa: F401  (before torch: it sets GOMP_SPINCOUNT for NNPACK's threads)

# isort: split
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median_time, peak_rss_mib  # noqa: E402

from semstyle.api import load_config  # noqa: E402
from semstyle.conf.dst import BASES  # noqa: E402
from semstyle.core.encoder import vgg19_encoder  # noqa: E402
from semstyle.core.image import load_image, resize  # noqa: E402
from semstyle.engine import make_optimizer  # noqa: E402
from semstyle.methods import dst  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONTENT, STYLE = ROOT / "assets/content/astronaut.jpg", ROOT / "assets/styles/monalisa.jpg"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pipeline(args) -> None:
    from semstyle.api import run

    overrides = [f"base={args.base}", f"size={args.size}", "progress=false", *args.overrides]
    with tempfile.TemporaryDirectory() as tmp:
        t, c = time.perf_counter(), cpu_seconds()
        out = run({"method": "dst", "content": str(CONTENT), "style": str(STYLE), "out_dir": f"{tmp}/run"}, overrides)
        wall, cpu = time.perf_counter() - t, cpu_seconds() - c
        summary = (out / "dst.json").read_text()
    print(f"# {machine()}")
    print(f"# semstyle run method=dst {' '.join(overrides)}")
    print("| base | size | wall (s) | CPU (s) | peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    print(f"| {args.base} | {args.size} | {wall:.1f} | {cpu:.1f} | {peak_rss_mib():.0f} |")
    print(summary)


def dst_step(base_name: str, size: int, warp: bool, device: str):
    """One optimisation step of DST (``warp``) or of its base alone at ``size`` px, as :func:`dst.transfer` runs it."""
    cfg = load_config(
        {
            "method": "dst",
            "base": base_name,
            "size": size,
            "scales": [],
            "device": device,
            **({} if warp else {"warp_weight": 0}),
        }
    )
    opt = dst.settings(cfg)
    encoder = vgg19_encoder(opt["pooling"], cfg.precision, cfg.device)
    content = resize(load_image(CONTENT), size).to(encoder.device)
    style = resize(load_image(STYLE), size).to(encoder.device)
    gen = torch.Generator().manual_seed(0)
    points = (torch.rand(40, 2, generator=gen) * (size - 20) + 10).to(encoder.device)
    targets = points + torch.randn(40, 2, generator=gen).to(encoder.device) * size / 40
    base = dst.make_base(cfg, encoder)
    groups, objective, _, project, _ = dst.scale_problem(
        base,
        content,
        style,
        None,
        torch.zeros_like(points),
        points,
        targets,
        content.shape[-1],
        opt["content_weight"],
        opt,
        cfg,
    )
    optimizer = make_optimizer(opt["optimizer"], groups, opt["lr"])

    def closure():
        optimizer.zero_grad(set_to_none=True)
        total, _ = objective()
        total.backward()
        return total

    def step():
        optimizer.step(closure)
        if project is not None:
            with torch.no_grad():
                project()

    return step


def median_cpu_time(fn, repeats: int, warmup: int = 1) -> float:
    """Median process CPU seconds of ``fn()``: on a machine shared with other jobs, with one thread, it is what
    the wall time would be on an idle core."""
    import statistics

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        c = cpu_seconds()
        fn()
        times.append(cpu_seconds() - c)
    return statistics.median(times)


def steps(args) -> None:
    timer = median_cpu_time if args.cpu_time else median_time
    print(f"# {machine()}; {'process CPU time' if args.cpu_time else 'wall time'}")
    print("| base | size | base step (s) | DST step (s) | ratio |")
    print("|---|---|---|---|---|")
    for base_name in args.bases:
        for size in args.sizes:
            plain = timer(dst_step(base_name, size, False, args.device), args.repeats, warmup=1)
            full = timer(dst_step(base_name, size, True, args.device), args.repeats, warmup=1)
            print(f"| {base_name} | {size} | {plain:.3f} | {full:.3f} | {full / plain:.2f} |", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("pipeline")
    a.add_argument("--base", default="strotss", choices=BASES)
    a.add_argument("--size", type=int, default=256)
    a.add_argument("overrides", nargs="*", help="config overrides key=value")
    a.set_defaults(func=pipeline)
    b = sub.add_parser("steps")
    b.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    b.add_argument("--bases", nargs="+", default=list(BASES))
    b.add_argument("--repeats", type=int, default=5)
    b.add_argument("--device", default="auto")
    b.add_argument("--cpu-time", action="store_true", help="time by process CPU seconds (run with 1 thread)")
    b.set_defaults(func=steps)
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
