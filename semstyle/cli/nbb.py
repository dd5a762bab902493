"""``semstyle nbb A B [--k 80] [--fast] [--clean] [--levels] [--out DIR]``: NBB keypoints, files and pictures."""

from __future__ import annotations

import time
from pathlib import Path

from ..conf.dst import DSTConfig
from ..conf.vocab import PRECISIONS

MAX_NUM_POINTS = DSTConfig.max_points  # DST cleanpoints.py via job_example.sh
DEFAULT_SIZE = DSTConfig.nbb_size  # DST job_example.sh --imageSize 256


def _positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def _small(picture):
    """256-colour palette (dithered): a third of the PNG size, no visible loss for a keypoint picture."""
    return picture.quantize(256, dither=1)  # 1 = PIL.Image.Dither.FLOYDSTEINBERG


def add_cli(sub) -> None:
    p = sub.add_parser("nbb", help="Neural Best-Buddies keypoints between two images (optionally DST-cleaned)",
                       description="Sparse cross-domain correspondences (Aberman et al. 2018). Writes "
                                   "correspondence_A.txt / _B.txt / _activation.txt (DST format: 'row, col' in "
                                   "original pixels), correspondences.json and correspondences.png.")
    p.add_argument("image_a", help="first image (DST: the content image)")
    p.add_argument("image_b", help="second image (DST: the style image)")
    p.add_argument("--k", type=_positive_int, default=MAX_NUM_POINTS,
                   help="at most this many pairs: k-means selection, or DST's max_num_points with --clean (80)")
    p.add_argument("--k-per-level", type=_positive_int, default=None,
                   help="k-means pruning to this many pairs after every level (NBB's k_per_level; default: none)")
    p.add_argument("--fast", action="store_true", help="stop at relu2_1 (as DST runs NBB)")
    p.add_argument("--clean", action="store_true",
                   help="DST cleaning instead of k-means: activation >= 1, greedy spacing b=10 px, no crossings")
    p.add_argument("--levels", action="store_true", help="also draw the pairs found at every level")
    p.add_argument("--size", type=_positive_int, default=DEFAULT_SIZE, help=f"working long side, px ({DEFAULT_SIZE})")
    p.add_argument("--height", type=_positive_int, default=320, help="height of the pictures, px (320)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="output folder (default runs/nbb-<timestamp>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_cli)


def run_cli(args) -> Path:
    # torch loads when the command runs: --help and usage errors answer without it
    from ..correspondence.clean import clean_points
    from ..correspondence.io import write_correspondences
    from ..correspondence.nbb import nbb_keypoints
    from ..correspondence.plot import draw_correspondences
    from ..image import load_image, save_image

    out = Path(args.out or f"runs/nbb-{time.strftime('%Y%m%d-%H%M%S')}")
    image_a = load_image(args.image_a, what="image A")
    image_b = load_image(args.image_b, what="image B")
    start = time.perf_counter()
    result = nbb_keypoints(image_a, image_b, k=None if args.clean else args.k, fast=args.fast, size=args.size,
                           k_per_level=args.k_per_level, precision=args.precision, device=args.device,
                           progress=not args.quiet)
    pa, pb, act = result
    found = result.candidates
    if args.clean:
        pa, pb, act = clean_points(pa, pb, act, result.size_a, result.size_b, max_num_points=args.k)
    seconds = time.perf_counter() - start
    meta = {"image_a": str(args.image_a), "image_b": str(args.image_b), "size_a_hw": list(result.size_a),
            "size_b_hw": list(result.size_b), "fast": args.fast, "clean": args.clean, "k": args.k,
            "working_size": args.size, "pairs_before_selection": found, "seconds": round(seconds, 2)}
    write_correspondences(out, pa, pb, act, meta=meta)
    title = f"NBB{' fast' if args.fast else ''}{', DST-cleaned' if args.clean else ''}: {len(pa)} pairs"
    picture = draw_correspondences(image_a, image_b, pa, pb, height=args.height, title=title)
    save_image(_small(picture), out / "correspondences.png")
    if args.levels:
        for level in result.levels:
            picture = draw_correspondences(image_a, image_b, level.points_a, level.points_b, height=args.height,
                                           title=f"{level.layer}: {len(level.activation)} best buddies")
            save_image(_small(picture), out / f"level_{level.layer}.png")
    print(f"{len(pa)} pairs ({found} best buddies before {'cleaning' if args.clean else 'selection'}) "
          f"in {seconds:.1f} s -> {out}")
    return out
