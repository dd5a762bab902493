"""Laplacian loss: weights γ down, pool sizes 4, 16 and both across.

Li, Xu, Zhang & Huang 2017, "Laplacian-Steered Neural Style Transfer" (semstyle.losses.laplacian): the Laplacian of
the p × p average-pooled image of the result is kept close to the content's, which keeps the content's edges; p = 4
keeps fine detail, p = 16 the coarse structure; both (lap_style.lua's -laplacian 4,16) combine them.

    python scripts/laplacian.py [--size 256] [--steps 60] [--out runs/experiments/laplacian]
"""

from __future__ import annotations

import sys

from _common import CONTENT, ROOT, STYLE, Timer, base_overrides, entry, exit_code, parser, sweep

WEIGHTS = ["0", "1e2", "1e3", "1e4"]  # 1e3 is configs/gatys/laplacian.yaml's (lap_style.lua's 100, rescaled)
POOLS = ["[4]", "[16]", "[4,16]"]


def main(argv=None) -> int:
    args = parser(__doc__, size=256, steps=60, out="runs/experiments/laplacian").parse_args(argv)
    with Timer():
        overrides = base_overrides(args) + [f"content={CONTENT}", f"style={STYLE}"]
        params = {"laplacian.weight": WEIGHTS, "laplacian.pool_sizes": POOLS}
        sweep(args, args.out, ROOT / "configs" / "default.yaml", params, overrides, rows="laplacian.weight")
    return exit_code()


if __name__ == "__main__":
    sys.exit(entry(main))
