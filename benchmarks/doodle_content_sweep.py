"""Doodle with a content photo: how much of the photo the result keeps, per content weight and start.

Prints, per pair, the luminance correlation of the result with the photo for the maps-only run (no photo) and for
each ``init/weight`` setting. Pairs without a drawn map get automatic maps (3 regions, joint k-means of colour and
position), computed once and used by every run of the pair. Needs ../shared/data. The table in docs/doodle.md
("Doodle with a content photo") was made with

    OMP_NUM_THREADS=1 python benchmarks/doodle_content_sweep.py --size 128 --phases 2 --steps 40 \
        --settings noise/10,content/10,content/30,content/100,content/300,noise/100
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import semstyle  # noqa: F401  (before torch: it sets GOMP_SPINCOUNT for NNPACK's threads)

# isort: split
import torch

from semstyle.core import semantic
from semstyle.core.image import load_image, resize, save_image
from semstyle.methods import doodle

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PAIRS = {  # name: (content photo, style painting, style map or None, target map or None)
    "astronaut": ("portraits/astronaut_monalisa/content.png", "portraits/astronaut_monalisa/style.jpg", None, None),
    "picasso": (
        "portraits/cnnmrf_portrait_picasso/content.jpg",
        "portraits/cnnmrf_portrait_picasso/style.jpg",
        None,
        None,
    ),
    "bunny": ("portraits/dst_bunny/content.jpg", "portraits/dst_bunny/style.jpg", None, None),
    "kodim15": ("content/kodim15.png", "styles/woman-with-hat-matisse.jpg", None, None),
    "owls": (
        "doodle/strotss_bouquet/content.jpg",
        "doodle/strotss_bouquet/style.jpg",
        "doodle/strotss_bouquet/style_sem.jpg",
        "doodle/strotss_bouquet/target_sem.jpg",
    ),
    "bird": ("content/bird_pixabay.jpg", "styles/starry_night.jpg", None, None),
}


def luminance_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of the BT.601 luminance of two ``(1, 3, H, W)`` images."""
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    la, lb = ((x * weights).sum(1).flatten() for x in (a, b))
    la, lb = la - la.mean(), lb - lb.mean()
    return float(la @ lb / (la.norm() * lb.norm()))


def pair_maps(content: torch.Tensor, style: torch.Tensor, style_map, target_map, regions: int = 3):
    """The pair's maps as colour images: its drawn ones, or automatic maps drawn in the palette."""
    if style_map is not None:
        return SHARED / style_map, SHARED / target_map
    style_masks, target_masks = semantic.auto_maps([style, content], regions, "color", seed=0)
    palette = semantic.AUTO_COLORS[:regions]
    return semantic.masks_to_map(style_masks, palette), semantic.masks_to_map(target_masks, palette)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default=",".join(PAIRS))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--phases", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--settings",
        default="noise/10,content/10,content/30,content/100,content/300,noise/100",
        help="comma-separated init/content_weight",
    )
    parser.add_argument("--save", help="folder for the results (optional)")
    args = parser.parse_args()
    options = dict(size=args.size, steps=args.steps, phases=args.phases, seed=args.seed, progress=False)
    for name in args.pairs.split(","):
        content_path, style_path, style_map, target_map = PAIRS[name]
        content, style = load_image(SHARED / content_path), load_image(SHARED / style_path)
        smap, tmap = pair_maps(content, style, style_map, target_map)
        start = time.time()
        runs = {"maps-only": doodle.doodle(style, smap, tmap, **options)}
        for setting in args.settings.split(","):
            init, weight = setting.split("/")
            runs[setting] = doodle.doodle(
                style, smap, tmap, content=content, init=init, **{"content_weight": float(weight)}, **options
            )
        photo = resize(content, tuple(runs["maps-only"].shape[-2:]))
        cells = [f"{key} {luminance_correlation(result, photo):.3f}" for key, result in runs.items()]
        print(f"{name:10s} " + " | ".join(cells) + f"  ({time.time() - start:.0f} s)", flush=True)
        if args.save:
            for key, result in runs.items():
                save_image(result, Path(args.save) / f"{name}_{key.replace('/', '_')}.png")


if __name__ == "__main__":
    main()
