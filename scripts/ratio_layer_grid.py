"""Ratio × content layer: conv1_2 … conv5_2 down, four ratios α/β across, from white noise.

Gatys, Ecker & Bethge 2016, Fig. 5: matching the content on a low layer keeps the photo's fine detail and leaves
the texture little room; on a high layer only the layout is kept. The paper starts from white noise (so the
content layer, not the initial image, decides what survives), and so does this grid.

    python scripts/ratio_layer_grid.py [--size 256] [--steps 100] [--out runs/experiments/ratio_layers]
"""

from __future__ import annotations

import sys

from _common import CONTENT, ROOT, STYLE, Timer, base_overrides, entry, exit_code, parser, sweep

LAYERS = ["[conv1_2]", "[conv2_2]", "[conv3_2]", "[conv4_2]", "[conv5_2]"]
STYLE_WEIGHTS = ["1e-7", "1e-6", "1e-5", "1e-4"]  # α/β = 1e4 ... 1e1 with α = 1e-3


def main(argv=None) -> int:
    args = parser(__doc__, size=256, steps=100, out="runs/experiments/ratio_layers").parse_args(argv)
    with Timer():
        overrides = base_overrides(args) + [f"content={CONTENT}", f"style={STYLE}", "content_weight=1e-3", "init=noise"]
        params = {"content_layers": LAYERS, "style_weight": STYLE_WEIGHTS}
        sweep(args, args.out, ROOT / "configs" / "default.yaml", params, overrides, rows="content_layers")
    return exit_code()


if __name__ == "__main__":
    sys.exit(entry(main))
