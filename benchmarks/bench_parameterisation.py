"""Does L-BFGS reach the Gatys objective sooner on a Laplacian pyramid than on the pixels? (issue 17, time to quality)

    python benchmarks/bench_parameterisation.py [--size 256] [--steps 100] \
        [--pair CONTENT STYLE ...]   # default: three pairs from ../shared/data and assets/

One scale from the content image, the objective of ``configs/default.yaml`` (Gatys: content conv4_2, Gram conv1_1 …
conv5_1, average pooling), fp32, L-BFGS as the engine makes it (history 10, lr 1, no line search). Variants:

- ``pixels_clamp``: the pixels, clamped into [0, 1] after each step (what every method does);
- ``pixels``: the pixels, never clamped;
- ``pyr3`` / ``pyr5``: the bands of a 3- / 5-level Laplacian pyramid (:mod:`semstyle.core.pyramid`) as parameters,
  a linear change of variables that L-BFGS with a short history is not invariant to (STROTSS and DST use it with
  RMSprop / Adam);
- ``pyr5w``: the same with band ``i`` stored divided by ``2^i``, so a unit step moves a coarse band further;
- ``pixels_active``: the pixels, clamped after each step, with the gradient of each pixel held at a bound and
  pointing out of [0, 1] set to zero before L-BFGS sees it (the projected gradient, so that the curvature pairs
  describe moves the clamp lets through);
- ``lbfgsb``: the pixels under L-BFGS-B (scipy's, 10 corrections, bounds [0, 1], its own line search): a bounded
  method in place of clamping. Its steps are counted as objective evaluations (one VGG forward+backward each, as
  one step of the others), and its value at step ``k`` is the best feasible point of its first ``k`` evaluations.

Every ``--every`` steps the objective is evaluated on the image clamped into [0, 1] (the picture a user would get);
one Markdown row per pair and variant. docs/benchmarks.md records the result.
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
from common import machine  # noqa: E402

from semstyle.api import load_config  # noqa: E402
from semstyle.conf.gatys import style_plan  # noqa: E402
from semstyle.core.image import as_image, resize  # noqa: E402
from semstyle.core.pyramid import laplacian_pyramid, reconstruct  # noqa: E402
from semstyle.engine import Engine, make_optimizer  # noqa: E402
from semstyle.methods import gatys  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared/data"
PAIRS = [
    (DATA / "content/kodim15.png", DATA / "styles/the_scream.jpg"),
    (DATA / "content/bird_pixabay.jpg", DATA / "styles/woman-with-hat-matisse.jpg"),
    (ROOT / "assets/content/astronaut.jpg", DATA / "styles/seated-nude.jpg"),
]
VARIANTS = ("pixels_clamp", "pixels", "pyr3", "pyr5", "pyr5w", "pixels_active", "lbfgsb")


def parameterise(variant: str, start: torch.Tensor):
    """``(parameters, image())`` of one variant, started at ``start`` ``(1, 3, H, W)``."""
    if variant.startswith("pixels"):
        x = start.clone().requires_grad_(True)
        return [x], lambda: x
    bands = laplacian_pyramid(start, int(variant[3]))
    scales = [2.0**i if variant.endswith("w") else 1.0 for i in range(len(bands))]
    params = [(band / k).clone().requires_grad_(True) for band, k in zip(bands, scales)]
    return params, lambda: reconstruct([p * k for p, k in zip(params, scales)])


def lbfgsb_curve(objective, start: torch.Tensor, steps: int, every: int) -> list[float]:
    """Best objective of L-BFGS-B's first ``every``, ``2·every``, ... evaluations (all inside the bounds)."""
    import numpy as np
    from scipy.optimize import minimize

    x = start.clone()
    seen: list[float] = []

    def fun(flat: np.ndarray):
        with torch.no_grad():
            x.copy_(torch.from_numpy(flat.astype(np.float32)).view_as(x))
        x.requires_grad_(True)
        loss = objective(x)[0]
        (grad,) = torch.autograd.grad(loss, x)
        x.requires_grad_(False)
        seen.append(float(loss.detach()))
        return seen[-1], grad.double().flatten().numpy()

    flat = start.double().flatten().numpy()
    minimize(
        fun,
        flat,
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, 1.0)] * flat.size,
        options={"maxcor": 10, "maxfun": steps, "maxiter": steps, "ftol": 0.0, "gtol": 0.0},
    )
    best = np.minimum.accumulate(np.array(seen))
    return [float(best[min(k, len(best)) - 1]) for k in range(every, steps + 1, every)]


def curve(objective, variant: str, start: torch.Tensor, steps: int, every: int) -> list[float]:
    if variant == "lbfgsb":
        return lbfgsb_curve(objective, start, steps, every)
    params, image = parameterise(variant, start)
    opt = make_optimizer("lbfgs", params)

    def closure():
        opt.zero_grad()
        loss = objective(image())[0]
        loss.backward()
        if variant == "pixels_active":
            with torch.no_grad():
                x, g = params[0], params[0].grad
                g.masked_fill_(((x <= 0) & (g > 0)) | ((x >= 1) & (g < 0)), 0.0)
        return loss

    values = []
    for step in range(1, steps + 1):
        opt.step(closure)
        if variant in ("pixels_clamp", "pixels_active"):
            with torch.no_grad():
                params[0].clamp_(0, 1)
        if step % every == 0:
            with torch.no_grad():
                values.append(float(objective(image().clamp(0, 1))[0]))
    return values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--pair", nargs=2, action="append", metavar=("CONTENT", "STYLE"))
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    args = ap.parse_args()
    pairs = [tuple(map(Path, p)) for p in args.pair] if args.pair else PAIRS
    missing = [str(p) for pair in pairs for p in pair if not p.is_file()]
    if missing:
        sys.exit(f"bench_parameterisation: missing images: {', '.join(missing)} (the defaults need ../shared/data)")
    cfg = load_config(ROOT / "configs/default.yaml", [f"size={args.size}", "scales=[]", "precision=fp32"])
    encoder = Engine(cfg).encoder(cfg.pooling)
    objective = gatys.build_objective(cfg, style_plan(cfg, 1), encoder)
    print(f"# {machine()}; {args.size} px, fp32, objective every {args.every} of {args.steps} L-BFGS steps")
    print(
        "| pair | variant | seconds | objective at steps "
        + ", ".join(map(str, range(args.every, args.steps + 1, args.every)))
        + " |"
    )
    print("|---|---|---|---|")
    for content_path, style_path in pairs:
        content = resize(as_image(str(content_path), "content image"), args.size).to(encoder.device)
        style = resize(as_image(str(style_path), "style image"), args.size).to(encoder.device)
        gatys.set_targets(objective, content, [style])
        for variant in args.variants:
            began = time.perf_counter()
            values = curve(objective, variant, content, args.steps, args.every)
            seconds = time.perf_counter() - began
            row = ", ".join(f"{v:.1f}" for v in values)
            print(f"| {content_path.stem} / {style_path.stem} | {variant} | {seconds:.0f} | {row} |", flush=True)


if __name__ == "__main__":
    main()
