"""Two-level (MG/OPT) corrections of a Gatys optimisation: does a cheap coarse model save steps at full size?

    python benchmarks/two_level.py --pair assets/content/tubingen.jpg assets/styles/starry_night.jpg --size 256
    python benchmarks/two_level.py --pair CONTENT STYLE --size 256 --plain     # the fine L-BFGS alone

Both start as the demo does: 20 L-BFGS steps at half the size, upsampled. ``--plain`` then runs ``--fine-steps``
L-BFGS steps on the fine objective. Without it, cycles of ``--pre`` fine steps, one coarse correction and
``--post`` fine steps run until as many fine evaluations are spent. The coarse correction is MG/OPT's (Nash 2000,
*A multigrid approach to discretized optimization problems*, eq. 2.3): at ``z0 = R x`` (2×2 average), the coarse
objective (the same terms and weights, targets at half the size) minus ``v·z``, with ``v = ∇f_c(z0) − Pᵀ∇f(x)``
(``P`` the bilinear upsampling), so that its gradient at ``z0`` is the fine gradient along ``P``;
``--coarse-steps`` L-BFGS steps on it, each pixel kept within ``--box`` of ``z0``, give ``e``, and ``x + α P e``
is accepted for the first ``α`` of 1, 1/2, 1/4, 1/8 that lowers the fine objective. Each trial costs one fine
evaluation, and the fine L-BFGS keeps its curvature pairs across an accepted correction. Prints every cycle, and
the final fine objective with the evaluations spent (fine and coarse; a coarse one costs about a quarter).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import semstyle  # noqa: F401  (before torch: it sets GOMP_SPINCOUNT for NNPACK's threads)

# isort: split
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import lbfgs_without_last_step, machine  # noqa: E402

from semstyle.api import load_config  # noqa: E402
from semstyle.conf.gatys import style_plan  # noqa: E402
from semstyle.core.encoder import vgg19_encoder  # noqa: E402
from semstyle.core.image import load_image, resize  # noqa: E402
from semstyle.engine import make_optimizer  # noqa: E402
from semstyle.engine.loop import LBFGS_MAX_PIXEL_STEP, LbfgsSpikeGuard  # noqa: E402
from semstyle.methods.gatys import build_objective, set_targets  # noqa: E402


def upsample(z: torch.Tensor) -> torch.Tensor:
    return F.interpolate(z, scale_factor=2, mode="bilinear", align_corners=False)


class Counted:
    """An objective that counts its evaluations; ``linear`` (a tensor) subtracts ``linear·x`` (MG/OPT's term)."""

    def __init__(self, objective, linear=None):
        self.objective, self.linear, self.calls = objective, linear, 0

    def __call__(self, x):
        self.calls += 1
        total = self.objective(x)[0]
        return total if self.linear is None else total - (self.linear * x).sum()


def lbfgs(fn, x, steps, opt=None, box=None):
    """``steps`` L-BFGS steps on ``fn`` as the engine takes them (step limit, pixels clamped to [0, 1], and to
    ``box = (lo, hi)`` if given); returns the optimiser, to go on with its curvature pairs."""
    opt = opt or make_optimizer("lbfgs", [x], 1.0, None)
    guard = LbfgsSpikeGuard(opt, factor=math.inf, max_step=LBFGS_MAX_PIXEL_STEP)
    last = [math.nan]

    def closure():
        opt.zero_grad(set_to_none=True)
        total = fn(x)
        total.backward()
        last[0] = float(total.detach())
        return total

    for _ in range(steps):
        guard.before_step()
        opt.step(closure)
        guard.after_step(last[0])
        with torch.no_grad():
            x.clamp_(0, 1)
            if box is not None:
                x.copy_(torch.minimum(torch.maximum(x, box[0]), box[1]))
    return opt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pair", nargs=2, required=True, metavar=("CONTENT", "STYLE"))
    p.add_argument("--size", type=int, default=256, help="fine long side (the coarse one is half)")
    p.add_argument("--fine-steps", type=int, default=100, help="fine evaluations to spend")
    p.add_argument("--plain", action="store_true", help="fine L-BFGS alone")
    p.add_argument("--pre", type=int, default=5)
    p.add_argument("--post", type=int, default=5)
    p.add_argument("--coarse-steps", type=int, default=10)
    p.add_argument("--box", type=float, default=0.05, help="largest change of a coarse pixel in a correction")
    args = p.parse_args()
    torch.manual_seed(0)
    cfg = load_config(None, [f"content={args.pair[0]}", f"style={args.pair[1]}", "precision=fp32", "device=cpu"])
    plan, encoder = style_plan(cfg, 1), vgg19_encoder(cfg.pooling, cfg.precision, cfg.device)
    content, style = load_image(args.pair[0]), load_image(args.pair[1])
    h, w = resize(content, args.size).shape[-2:]
    h, w = h - h % 2, w - w % 2
    levels = {}
    for name, shape, long_side in (("fine", (h, w), args.size), ("coarse", (h // 2, w // 2), args.size // 2)):
        objective = build_objective(cfg, plan, encoder)
        set_targets(objective, resize(content, shape), [resize(style, max(16, round(long_side * cfg.style_scale)))])
        levels[name] = (objective, resize(content, shape))
    fine, coarse = Counted(levels["fine"][0]), Counted(levels["coarse"][0])
    print(f"# {machine()}; pair {args.pair[0]} / {args.pair[1]}; fine {h}x{w}", flush=True)

    z = levels["coarse"][1].clone().requires_grad_(True)
    lbfgs(coarse, z, 20)  # the demo's start
    x = upsample(z.detach()).clamp(0, 1).contiguous().requires_grad_(True)
    if args.plain:
        lbfgs(fine, x, args.fine_steps)
    opt = None
    while not args.plain and fine.calls < args.fine_steps:
        opt = lbfgs(fine, x, args.pre, opt)
        x.grad = None
        fx = fine(x)
        fx.backward()
        fx = float(fx.detach())
        e = torch.zeros(1, 3, h // 2, w // 2, requires_grad=True)
        (upsample(e) * x.grad).sum().backward()  # Pᵀ ∇f(x)
        z0 = F.avg_pool2d(x.detach(), 2).contiguous()
        zz = z0.clone().requires_grad_(True)
        coarse(zz).backward()
        corrected = Counted(levels["coarse"][0], linear=zz.grad.detach() - e.grad)
        zz = z0.clone().requires_grad_(True)
        lbfgs(corrected, zz, args.coarse_steps, box=(z0 - args.box, z0 + args.box))
        coarse.calls += corrected.calls
        step = upsample(zz.detach() - z0)
        slope = float((x.grad * step).sum())
        for alpha in (1.0, 0.5, 0.25, 0.125):
            with torch.no_grad():
                trial = (x.detach() + alpha * step).clamp(0, 1)
                f_trial = float(fine(trial))
            if f_trial < fx:
                break
        accepted = f_trial < fx
        print(f"  cycle: f {fx:.3f}, slope along P e {slope:.2f}, at α {alpha}: {f_trial:.3f}"
              f" ({'accepted' if accepted else 'rejected'})", flush=True)  # fmt: skip
        if accepted:
            with torch.no_grad():
                x.copy_(trial)
            if opt.state[x].get("old_dirs"):
                lbfgs_without_last_step(opt, x)  # the pairs stay, and the jump adds none
            else:
                opt.state.clear()
        opt = lbfgs(fine, x, args.post, opt)
    with torch.no_grad():
        final = float(levels["fine"][0](x.detach())[0])
    kind = "plain" if args.plain else "two-level"
    print(f"{kind}: final objective {final:.4f}, {fine.calls} fine and {coarse.calls} coarse evaluations")


if __name__ == "__main__":
    main()
