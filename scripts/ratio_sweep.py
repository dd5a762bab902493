"""Content/style weight ratio: five ratios α/β from content-dominated (1e5) to style-dominated (1e1).

Gatys, Ecker & Bethge 2016, Fig. 3 (the ratio trades the photo's layout for the painting's texture). α = 1e-3 is
fixed and β takes five values a decade apart around the default 1e-6, on Tübingen and The Starry Night.

    python scripts/ratio_sweep.py [--size 256] [--steps 60] [--out runs/experiments/ratio]
"""

from __future__ import annotations

import sys

from _common import CONTENT, ROOT, STYLE, Timer, base_overrides, entry, exit_code, parser, sweep

STYLE_WEIGHTS = ["1e-8", "1e-7", "1e-6", "1e-5", "1e-4"]  # α/β = 1e5 ... 1e1 with α = 1e-3


def main(argv=None) -> int:
    args = parser(__doc__, size=256, steps=60, out="runs/experiments/ratio").parse_args(argv)
    with Timer():
        overrides = base_overrides(args) + [f"content={CONTENT}", f"style={STYLE}", "content_weight=1e-3"]
        sweep(args, args.out, ROOT / "configs" / "default.yaml", {"style_weight": STYLE_WEIGHTS}, overrides)
    return exit_code()


if __name__ == "__main__":
    sys.exit(entry(main))
