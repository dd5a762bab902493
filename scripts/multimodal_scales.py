"""The Multimodal network's three outputs (Wang et al. 2017, Fig. 1 and 6): style, enhance and refine subnets,
beside the single-scale Johnson baseline, with 1:1 crops of the last scale; the bundled Starry Night models.

    python scripts/multimodal_scales.py [--photo P] [--size 1024] [--model multimodal] [--baseline johnson]
        [--out runs/experiments/multimodal]

Writes ``scales.png`` in ``--out``. ``--size`` is the long side of the last scale (the hierarchy halves it for the
earlier ones). A feed-forward pass, no optimisation: seconds on a 2-core CPU (docs/feedforward.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _common import ASSETS, Timer, entry

from semstyle.core.image import load_image, resize
from semstyle.feedforward.stylize import Stylizer
from semstyle.viz.layout import captioned_row

PANEL = 256  # px: the height of every panel and crop


def scales_figure(
    photo, size: int, device: str = "cpu", precision: str = "auto", model: str = "multimodal", baseline: str = "johnson"
):
    """``(1, 3, H, W)`` photo -> a captioned row: input, the three scales of the Multimodal ``model``, the Johnson
    ``baseline``, and 1:1 crops of the last scale and of the baseline."""
    outputs = Stylizer(model, device, precision)(photo, size, all_scales=True)
    johnson = Stylizer(baseline, device, precision)(photo, size)
    panels = [
        resize(p, (PANEL, round(p.shape[-1] * PANEL / p.shape[-2])), mode="bilinear")
        for p in [photo, *outputs, johnson]
    ]
    top, left = outputs[-1].shape[-2] // 3, outputs[-1].shape[-1] // 3
    crops = [image[..., top : top + PANEL, left : left + PANEL] for image in (outputs[-1], johnson)]
    sizes = [f"{max(o.shape[-2:])} px" for o in outputs]
    captions = [
        "input",
        f"style subnet {sizes[0]}",
        f"enhance {sizes[1]}",
        f"refine {sizes[2]}",
        f"Johnson {max(johnson.shape[-2:])} px",
        "refine, 1:1 crop",
        "Johnson, 1:1 crop",
    ]
    return captioned_row([*panels, *crops], captions)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0], epilog="See docs/experiments.md.")
    p.add_argument("--photo", default=str(ASSETS / "content" / "astronaut.jpg"), help="default: the bundled astronaut")
    p.add_argument("--size", type=int, default=1024, help="long side of the last scale in px (default 1024)")
    p.add_argument("--model", default="multimodal", help="a Multimodal model file or bundled name (multimodal-1024)")
    p.add_argument("--baseline", default="johnson", help="a Johnson model file or bundled name (johnson-1024)")
    p.add_argument("--out", default="runs/experiments/multimodal", help="output folder")
    args = p.parse_args(argv)
    with Timer():
        figure = scales_figure(
            load_image(args.photo, what="photo"), args.size, model=args.model, baseline=args.baseline
        )
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        figure.save(out / "scales.png")
        print(f"result: {out / 'scales.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(entry(main))
