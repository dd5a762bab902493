"""Total variation on and off: tv_weight 0 (the paper) against two strengths.

The TV regulariser (Mahendran & Vedaldi 2015; semstyle.losses.tv, mean squared neighbour differences of the [0, 1]
image) smooths the high-frequency noise a Gatys result picks up; too much of it blurs the brush strokes away.

    python scripts/total_variation.py [--size 256] [--steps 60] [--out runs/experiments/tv]
"""

from __future__ import annotations

import sys

from _common import CONTENT, ROOT, STYLE, Timer, base_overrides, entry, exit_code, parser, sweep

TV_WEIGHTS = ["0", "1e4", "1e5"]


def main(argv=None) -> int:
    args = parser(__doc__, size=256, steps=60, out="runs/experiments/tv").parse_args(argv)
    with Timer():
        overrides = base_overrides(args) + [f"content={CONTENT}", f"style={STYLE}"]
        sweep(args, args.out, ROOT / "configs" / "default.yaml", {"tv_weight": TV_WEIGHTS}, overrides)
    return exit_code()


if __name__ == "__main__":
    sys.exit(entry(main))
