"""Doodle → painting over semantic weights: Monet's cliffs painted from the coastline doodle, semantic.weight 0 … 100.

Champandard 2016, "Semantic Style Transfer and Turning Two-Bit Doodles into Fine Artworks", Fig. 4: the weight of
the map channels in the patch match. At 0 the patches are matched on features alone and the regions mix; from
about 10 (neural-doodle's default) each region of the doodle takes its patches from the same region of the
painting. Needs the neural-doodle maps in ../shared/data (AGPL, not shipped); skips with a reason without them.

    python scripts/doodle_semantic.py [--size 256] [--steps 60] [--out runs/experiments/doodle]
"""

from __future__ import annotations

import sys

from _common import ROOT, Timer, base_overrides, entry, exit_code, needs_shared, parser, sweep

SEMANTIC_WEIGHTS = ["0", "1", "10", "100"]


def main(argv=None) -> int:
    args = parser(__doc__, size=256, steps=60, out="runs/experiments/doodle").parse_args(argv)
    style, style_map, target_map = needs_shared(
        "doodle/monet/style.jpg", "doodle/monet/style_sem.png", "doodle/monet/target_sem.png"
    )
    with Timer():
        overrides = base_overrides(args, scales=False) + [
            "phases=2",
            f"style={style}",
            f"style_map={style_map}",
            f"content_map={target_map}",
        ]
        params = {"semantic.weight": SEMANTIC_WEIGHTS}
        sweep(args, args.out, ROOT / "configs" / "doodle" / "monet.yaml", params, overrides)
    return exit_code()


if __name__ == "__main__":
    sys.exit(entry(main))
