"""Neural doodle / CNNMRF step time relative to a bare VGG-19 forward+backward, peak memory, and the wall time of the
Monet doodle (needs ../shared/data).

    python benchmarks/bench_doodle.py [--sizes 256 512] [--modes doodle fast cnnmrf] [--repeats 3] [--precision fp32]
                                      [--match-channels 32]     # search on 32 principal channels (approximate)
                                      [--set mrf.search=exact]  # any config override
    python benchmarks/bench_doodle.py --monet-wall 512      # the whole configs/doodle/monet.yaml run, timed
    python benchmarks/bench_doodle.py --monet-wall 512 --modes fast --match-channels 32 --set seed=1

A "step" is one L-BFGS iteration of the doodle objective on the Monet set (maps only, noise image): one encoder
forward+backward to relu4_1 plus the MRF nearest-neighbour search and loss on relu3_1 and relu4_1, the per-region
colour term, TV and the update. Modes: ``doodle`` = neural-doodle defaults (style and synthesis patch stride 1),
``fast`` = the same with CNNMRF's strides (2, 2), ``cnnmrf`` = no maps, strides 2, the cnnmrf method's layer
weights. Each (size, mode) runs in
its own process so its peak RSS is its own; within it the step and the bare passes are timed in turn (interleaved),
so that load from other processes on a shared machine hits them alike. The bare reference is ``common.bare_vgg_step`` to relu4_1 (the
deepest layer a maps-only doodle reads) and to relu5_1 (the reference of bench_step.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import semstyle  # noqa: F401  (before torch: it sets GOMP_SPINCOUNT for NNPACK's threads)

# isort: split
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bare_vgg_step, lbfgs_step, machine, peak_rss_mib  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MONET = ROOT.parent / "shared" / "data" / "doodle" / "monet"
MODES = {
    "doodle": {},
    "fast": {"mrf.style_stride": 2, "mrf.stride": 2},
    "cnnmrf": {"method": "cnnmrf"},
}


def interleaved_times(fns: dict, repeats: int, warmup: int = 2) -> dict:
    """Median wall and CPU seconds of each callable, calling them in turn (A, B, C, A, B, C, ...) so that all of them
    see the same load on a shared machine; ``common.median_time`` times one callable after another."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    wall = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in fns}


def monet_set(size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The Monet painting ``(1, 3, h, w)`` at ``size`` with its masks and the doodle's, ``(1, K, h, w)`` each."""
    from semstyle.core import semantic
    from semstyle.core.image import load_image

    style_masks, target_masks, _ = semantic.semantic_masks(
        semantic.load_map(MONET / "style_sem.png", size), semantic.load_map(MONET / "target_sem.png", size)
    )
    return load_image(MONET / "style.jpg", size), style_masks, target_masks


def measure(size: int, mode: str, repeats: int, precision: str = "auto", overrides: dict | None = None) -> dict:
    """Median seconds of a doodle step and of bare VGG steps at ``size``, in this process. The step is timed after
    the first (an exact search at a phase's start, with ``mrf.search=patchmatch``); with ``mrf.search_every`` n,
    n steps (one search, then n - 1 on its matches) are timed together and divided by n."""
    from semstyle.api import load_config
    from semstyle.core.encoder import vgg19_encoder
    from semstyle.methods.doodle import doodle_objective, set_targets
    from semstyle.patches.search import CHUNK_ELEMENTS

    options = dict(MODES[mode], **(overrides or {}))
    cfg = load_config(
        {
            "method": options.pop("method", "doodle"),
            "style": str(MONET / "style.jpg"),
            "content": str(MONET / "style.jpg"),
            "precision": precision,
        },
        [f"{k}={v}" for k, v in options.items()],
    )
    encoder = vgg19_encoder(cfg.pooling, cfg.precision, cfg.device)
    style, s_masks, t_masks = monet_set(size)
    style = style.to(encoder.device)
    guided = cfg.method == "doodle"
    # the doodle's own objective, maps only (no content): MRF, region colour and TV terms
    objective, terms = doodle_objective(cfg, encoder, guided, has_content=False)
    set_targets(objective, terms, cfg, style, s_masks if guided else None, t_masks if guided else None, None)
    mrf = terms["style"]
    image = (16 + torch.rand_like(style) * 224).div(255).requires_grad_(True)
    one_step = lbfgs_step(objective, image)
    every = cfg.mrf.search_every  # steps per search: timed together, so that each timing holds one search

    def steps():
        for _ in range(every):
            one_step()

    t = interleaved_times(
        {
            "step": steps,
            "bare41": bare_vgg_step(encoder, style, "relu4_1"),
            "bare51": bare_vgg_step(encoder, style, "relu5_1"),
        },
        repeats,
    )
    (t_step, c_step), (t_bare4, c_bare4), (t_bare5, _) = t["step"], t["bare41"], t["bare51"]
    t_step, c_step = t_step / every, c_step / every
    patches = {layer: len(rows) for layer, rows in mrf.style_rows.items()}
    return {
        "size": f"{style.shape[-1]}x{style.shape[-2]}",
        "mode": mode,
        "step_s": t_step,
        "bare41_s": t_bare4,
        "bare51_s": t_bare5,
        "ratio41": t_step / t_bare4,
        "ratio51": t_step / t_bare5,
        "cpu_ratio41": c_step / c_bare4,
        "search": f"{cfg.mrf.search} on {cfg.mrf.match_channels or 'all'} channels"
        + (f", every {every} steps" if every > 1 else ""),
        "peak_rss_mib": peak_rss_mib(),
        "style_patches": patches,
        "precision": encoder.precision,
        "chunk_elements": CHUNK_ELEMENTS,
    }


def exact_mrf_loss(output: Path, size: int, stride: int) -> float:
    """The MRF style loss of a Monet result (the doodle's default layers, pooling and semantic weight; strides
    ``stride``), with the exact search in float32: the yardstick for runs whose own search was approximate
    (``mrf.match_channels``)."""
    from semstyle.conf.doodle import DoodleConfig
    from semstyle.core.encoder import vgg19_encoder
    from semstyle.core.image import load_image
    from semstyle.losses.mrf import MRFLoss

    defaults = DoodleConfig()
    encoder = vgg19_encoder(defaults.pooling, "fp32", "cpu")
    style, s_masks, t_masks = monet_set(size)
    mrf = MRFLoss(style_stride=stride, stride=stride, semantic_weight=defaults.semantic.weight)
    with torch.no_grad():
        mrf.set_target(encoder(style, mrf.layers), s_masks)
        mrf.set_input_masks(t_masks)
        return mrf(encoder(load_image(output, size), mrf.layers)).item()


def monet_wall(size: int, options: dict) -> None:
    """Time ``semstyle run configs/doodle/monet.yaml size=SIZE [options]`` end to end (3 phases x 100 steps, as the
    figures in docs/benchmarks/doodle.md were measured; the config itself now runs 80 at 512 px), then
    score the result with :func:`exact_mrf_loss`."""
    out = ROOT / "runs" / f"bench-monet-{size}-{time.strftime('%Y%m%d-%H%M%S')}"
    overrides = [f"{k}={v}" for k, v in options.items()]
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "semstyle",
            "run",
            "configs/doodle/monet.yaml",
            f"size={size}",
            f"out_dir={out}",
            "progress=false",
            "steps=100",
            "coarse_steps=100",
            *overrides,
        ],
        cwd=ROOT,
        check=True,
    )
    wall = time.perf_counter() - start
    loss = exact_mrf_loss(out / "output.png", size, int(options.get("mrf.stride", 1)))
    print(
        f"Monet doodle {size} px, configs/doodle/monet.yaml {' '.join(overrides)} (3 phases x 100 L-BFGS steps): "
        f"{wall:.0f} s wall ({wall / 60:.1f} min) on {machine()}; MRF loss of the result with the exact search "
        f"{loss:.0f}; result in {out}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument(
        "--match-channels", type=int, metavar="N", help="mrf.match_channels: search on N principal channels (0: all)"
    )
    parser.add_argument(
        "--monet-wall",
        type=int,
        metavar="SIZE",
        help="time the whole Monet config at SIZE instead (with the first of --modes, doodle or fast)",
    )
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="more config overrides (e.g. mrf.search=exact, seed=1)",
    )
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not MONET.is_dir():
        sys.exit(f"needs the shared test material in {MONET}")
    overrides = dict(
        [("mrf.match_channels", args.match_channels)] if args.match_channels is not None else [],
        **dict(item.split("=", 1) for item in args.set),
    )
    if args.monet_wall:
        options = dict(MODES[args.modes[0]], **overrides)
        if "method" in options:
            sys.exit("--monet-wall runs the doodle config: use --modes doodle or fast")
        monet_wall(args.monet_wall, options)
        return
    if args.child:
        print(json.dumps(measure(int(args.child[0]), args.child[1], args.repeats, args.precision, overrides)))
        return
    print(f"machine: {machine()}")
    print(
        "| size | mode | step (s) | bare VGG→relu4_1 (s) | ratio | CPU-time ratio | bare VGG→relu5_1 (s) | ratio | "
        "peak RSS (MiB) | style patches |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        for mode in args.modes:
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(size),
                    mode,
                    "--repeats",
                    str(args.repeats),
                    "--precision",
                    args.precision,
                    *(["--set", *[f"{k}={v}" for k, v in overrides.items()]] if overrides else []),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(
                f"| {r['size']} | {r['mode']} ({r['search']}) | {r['step_s']:.3f} | {r['bare41_s']:.3f} | {r['ratio41']:.2f} | "
                f"{r['cpu_ratio41']:.2f} | "
                f"{r['bare51_s']:.3f} | {r['ratio51']:.2f} | {r['peak_rss_mib']:.0f} | "
                f"{', '.join(f'{k} {v}' for k, v in r['style_patches'].items())} |",
                flush=True,
            )
    print(f"precision {r['precision']}; NCC search chunk: {r['chunk_elements']} scores (L·chunk patches ≤ 2^24)")


if __name__ == "__main__":
    main()
