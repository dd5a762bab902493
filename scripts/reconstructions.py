"""Content and style reconstructions from each layer conv1_1 … conv5_1, and the first feature maps of each layer.

Gatys, Ecker & Bethge 2016, Fig. 1: from white noise, an image is optimised to match Tübingen's features on one
layer (content: low layers give back the pixels, high layers the objects and their layout) or The Starry Night's
Gram matrices on the growing sets conv1_1, conv1_1 + conv2_1, ... (style: larger and larger texture structures).
Two sweeps over the layers (semstyle.methods.reconstruct), each with its contact sheet and report; ``figure.png``
puts both rows of reconstructions above the first feature maps of each layer (semstyle.viz.features).

    python scripts/reconstructions.py [--size 160] [--steps 100] [--out runs/experiments/reconstructions]
"""

from __future__ import annotations

import sys
from pathlib import Path

from _common import CONTENT, ROOT, STYLE, Timer, base_overrides, entry, exit_code, parser, sweep

LAYERS = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
CONFIG = ROOT / "configs" / "gatys" / "reconstruct_content.yaml"


def main(argv=None) -> int:
    args = parser(__doc__, size=160, steps=100, out="runs/experiments/reconstructions").parse_args(argv)
    from semstyle.core.image import load_image, save_image
    from semstyle.experiments.metrics import sweep_runs
    from semstyle.viz.features import feature_view
    from semstyle.viz.layout import captioned_row

    with Timer():
        out = Path(args.out)
        single = [f"[{layer}]" for layer in LAYERS]
        growing = [f"[{','.join(LAYERS[: i + 1])}]" for i in range(len(LAYERS))]
        rows = []
        for target, image, layer_sets in (("content", CONTENT, single), ("style", STYLE, growing)):
            overrides = base_overrides(args, scales=False) + [f"target={target}", f"image={image}", "growing=false"]
            folder = sweep(args, out / target, CONFIG, {"layers": layer_sets}, overrides)
            panels, captions = [load_image(image, args.size)], [target]
            for run in sweep_runs(folder):  # in sweep order; one reconstruction per run (growing=false)
                found = sorted(run["folder"].glob(f"{target}_*.png"))
                if run["state"] == "done" and found:
                    layers = run["overrides"]["layers"].strip("[]").split(",")
                    panels.append(load_image(found[0]))
                    captions.append(layers[0] if len(layers) == 1 else f"{layers[0]} … {layers[-1]}")
            if panels:
                rows.append(captioned_row(panels, captions))
        rows.append(feature_view(load_image(CONTENT, args.size), LAYERS, channels=8, tile=48))
        save_image(_stack(rows), out / "figure.png")
        print(f"figure: {out / 'figure.png'}")
    return exit_code()


def _stack(pictures, gap: int = 8):
    from PIL import Image

    width = max(p.width for p in pictures)
    figure = Image.new("RGB", (width, sum(p.height for p in pictures) + gap * (len(pictures) - 1)), "white")
    y = 0
    for p in pictures:
        figure.paste(p, (0, y))
        y += p.height + gap
    return figure


if __name__ == "__main__":
    sys.exit(entry(main))
