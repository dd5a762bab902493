"""Multi-style blend: The Starry Night and The Shipwreck mixed with weights 0, 0.25, 0.5, 0.75, 1.

Gatys et al. 2016 (and neural-style's -style_blend_weights): the style loss is Σ_i w_i E_i over the style images,
the weights normalised to sum to 1. The columns run from all Starry Night (w = 0 for the Shipwreck) to all
Shipwreck.

    python scripts/multi_style_blend.py [--size 256] [--steps 60] [--out runs/experiments/blend]
"""

from __future__ import annotations

import sys

from _common import ASSETS, CONTENT, ROOT, STYLE, Timer, base_overrides, entry, exit_code, parser, sweep

BLENDS = ["[1,0]", "[0.75,0.25]", "[0.5,0.5]", "[0.25,0.75]", "[0,1]"]


def main(argv=None) -> int:
    args = parser(__doc__, size=256, steps=60, out="runs/experiments/blend").parse_args(argv)
    with Timer():
        styles = f"style=[{STYLE},{ASSETS / 'styles' / 'shipwreck.jpg'}]"
        overrides = base_overrides(args) + [f"content={CONTENT}", styles]
        sweep(args, args.out, ROOT / "configs" / "default.yaml", {"style_weights": BLENDS}, overrides)
    return exit_code()


if __name__ == "__main__":
    sys.exit(entry(main))
