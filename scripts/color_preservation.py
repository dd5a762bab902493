"""Colour preservation: none, luminance-only transfer (with mean and variance matching), histogram matching.

Gatys, Bethge, Hertzmann & Shechtman 2016, "Preserving Color in Neural Artistic Style Transfer", Figs. 2-3
(semstyle.core.color). β = 1e-5, strong enough that the style's colours would take over without preservation.

    python scripts/color_preservation.py [--size 256] [--steps 60] [--out runs/experiments/color]
"""

from __future__ import annotations

import sys

from _common import CONTENT, ROOT, STYLE, Timer, base_overrides, entry, exit_code, parser, sweep


def main(argv=None) -> int:
    args = parser(__doc__, size=256, steps=60, out="runs/experiments/color").parse_args(argv)
    with Timer():
        overrides = base_overrides(args) + [f"content={CONTENT}", f"style={STYLE}", "style_weight=1e-5"]
        params = {"color.preserve": ["none", "luminance", "histogram"]}
        sweep(args, args.out, ROOT / "configs" / "default.yaml", params, overrides)
    return exit_code()


if __name__ == "__main__":
    sys.exit(entry(main))
