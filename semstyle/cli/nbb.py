"""``semstyle nbb A B [--k 80] [--fast] [--clean] [--levels] [--out DIR]``: NBB keypoints, files and pictures.

``semstyle nbb A B --clean-only A.txt B.txt [ACT.txt] [--frame original|working]``: DST's cleaning of existing
correspondence files, no NBB run (the images give the frame and the picture).

Output goes through :class:`semstyle.runs.RunDir`: written into ``DIR.partial`` and renamed to ``DIR`` at the end,
never into an existing non-empty folder.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..conf.checks import check_image, check_run_folder, header_size
from ..conf.keypoint_files import parse_correspondences
from ..conf.keypoints import DST_MAX_POINTS as MAX_NUM_POINTS
from ..conf.keypoints import DST_WORK_SIZE as WORK_SIZE
from ..conf.keypoints import NBB_SIZE as DEFAULT_SIZE
from ..conf.vocab import PRECISIONS
from ..errors import ConfigError, SemstyleError
from ..interrupts import deferred


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
    p = sub.add_parser(
        "nbb",
        help="Neural Best-Buddies keypoints between two images (optionally DST-cleaned)",
        description="Sparse cross-domain correspondences (Aberman et al. 2018). Writes "
        "correspondence_A.txt / _B.txt / _activation.txt (DST format: 'row, col' in "
        "original pixels), correspondences.json and correspondences.png. With "
        "--clean-only, cleans existing files the DST way instead of running NBB.",
    )
    p.add_argument("image_a", help="first image (DST: the content image)")
    p.add_argument("image_b", help="second image (DST: the style image)")
    p.add_argument(
        "--k",
        type=_positive_int,
        default=MAX_NUM_POINTS,
        help="at most this many pairs: k-means selection, or DST's max_num_points with --clean and --clean-only (80)",
    )
    p.add_argument(
        "--k-per-level",
        type=_positive_int,
        default=None,
        help="k-means pruning to this many pairs after every level (NBB's k_per_level; default: none)",
    )
    p.add_argument("--fast", action="store_true", help="stop at relu2_1 (as DST runs NBB)")
    p.add_argument(
        "--clean",
        action="store_true",
        help="DST cleaning instead of k-means: activation >= 1, greedy spacing b=10 px, no crossings",
    )
    p.add_argument(
        "--clean-only",
        nargs="+",
        default=None,
        metavar="FILE",
        help="A.txt B.txt [ACT.txt]: clean these correspondence files (DST's cleanpoints.py) without "
        "running NBB; image_a and image_b give the frame sizes and the picture",
    )
    p.add_argument(
        "--frame",
        choices=["original", "working"],
        default=None,
        help="with --clean-only: the files hold each image's original pixels (semstyle's files; "
        "default) or pixels of the images resized to --size on the long side (DST's raw NBB files)",
    )
    p.add_argument("--levels", action="store_true", help="also draw the pairs found at every level")
    p.add_argument(
        "--size",
        type=_positive_int,
        default=None,
        help=f"working long side, px: NBB runs and cleans at this size ({DEFAULT_SIZE}; {WORK_SIZE}, "
        "DST's im_size, with --clean-only)",
    )
    p.add_argument("--height", type=_positive_int, default=320, help="height of the pictures, px (320)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="new output folder (default runs/nbb-<timestamp>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_cli)


def _run_dir(out: str | None):
    from ..engine.runs import RunDir

    run = RunDir(out, "nbb", key="--out")
    if run.path.exists():  # RunDir's own message advises resume=true, which nbb does not have
        raise ConfigError(
            f"--out {run.final}: an unfinished nbb run left {run.path}; remove that folder or choose another --out"
        )
    return run


def _check_options(args) -> None:
    if args.clean_only is None:
        if args.frame is not None:
            raise ConfigError("--frame applies only to the files of --clean-only")
        return
    if not 2 <= len(args.clean_only) <= 3:
        raise ConfigError(f"--clean-only takes A.txt B.txt [ACT.txt], got {len(args.clean_only)} files")
    extra = [
        name
        for name, on in (
            ("--fast", args.fast),
            ("--levels", args.levels),
            ("--k-per-level", args.k_per_level is not None),
        )
        if on
    ]
    if extra:
        raise ConfigError(f"--clean-only runs no NBB; drop {', '.join(extra)}")


def _read_files(args, size_a, size_b):
    """The --clean-only files as lists (:func:`semstyle.conf.keypoint_files.parse_correspondences`), their points
    checked against the images' sizes ``(H, W)`` or, with ``--frame working``, NBB's square frame."""
    files = list(args.clean_only) + [None] * (3 - len(args.clean_only))
    if args.frame != "working":
        return parse_correspondences(*files, size_a=size_a, size_b=size_b)
    square = (args.size, args.size)
    try:
        return parse_correspondences(*files, size_a=square, size_b=square)
    except SemstyleError as e:
        raise SemstyleError(f"{e} (--frame working: pixels at --size {args.size}; DST's is 256)") from None


def _clean_files(args, image_a, image_b):
    """``(points_a, points_b, activation, meta)`` of DST's cleaning of the --clean-only files, original pixels."""
    import torch

    from ..geometry.keypoints.clean import clean_grid, clean_points, dst_to_original
    from ..geometry.keypoints.io import correspondence_tensors

    size_a, size_b = tuple(image_a.shape[-2:]), tuple(image_b.shape[-2:])
    pa, pb, act = correspondence_tensors(*_read_files(args, size_a, size_b))
    if args.frame == "working":  # DST's raw NBB files: integers in NBB's square im_size x im_size frame
        ga, gb = pa.long(), pb.long()  # DST truncates: int(row), int(col)
        rows, _ = clean_grid(
            ga,
            gb,
            ga.new_ones(len(ga)).float() if act is None else act,
            size_a,
            max_num_points=args.k,
            im_size=args.size,
        )
        # written the way DST's cleanpoints.py writes them, so that its cleaned files are reproduced exactly
        pa, pb = dst_to_original(ga[rows], size_a, args.size), dst_to_original(gb[rows], size_b, args.size)
        act = None if act is None else act[rows]
        found = len(ga)
        outside = sum(
            int(((p < 0) | (p >= torch.tensor([hw[1], hw[0]]))).any(1).sum()) for p, hw in ((pa, size_a), (pb, size_b))
        )
        if outside:  # DST's NBB frame is square, its cleaning's is not: DST writes such points the same way
            print(
                f"semstyle: note: {outside} cleaned points lie outside their image, as DST's cleanpoints.py "
                "writes them (its NBB works on a square frame)",
                file=sys.stderr,
            )
    else:
        found = len(pa)
        pa, pb, act = clean_points(pa, pb, act, size_a, size_b, max_num_points=args.k, im_size=args.size)
    meta = {
        "clean_only": [str(f) for f in args.clean_only],
        "frame": args.frame or "original",
        "pairs_before_cleaning": found,
    }
    return pa, pb, act, meta


def run_cli(args) -> Path:
    # torch loads when the command runs: --help, usage and file errors answer without it (Ctrl-C waits for the
    # import)
    _check_options(args)
    for path, what in ((args.image_a, "image A"), (args.image_b, "image B")):
        check_image(path, what)
    check_run_folder(args.out, "--out")
    if args.size is None:
        args.size = WORK_SIZE if args.clean_only is not None else DEFAULT_SIZE
    if args.clean_only is not None:
        _read_files(args, header_size(args.image_a, "image A"), header_size(args.image_b, "image B"))
    with deferred():
        from ..core.image import load_image
        from ..geometry.keypoints.clean import clean_points
        from ..geometry.keypoints.nbb import nbb_keypoints

    run = _run_dir(args.out)
    image_a = load_image(args.image_a, what="image A")
    image_b = load_image(args.image_b, what="image B")
    start = time.perf_counter()
    levels = []
    if args.clean_only is not None:
        pa, pb, act, extra = _clean_files(args, image_a, image_b)
        found, title = extra["pairs_before_cleaning"], "DST-cleaned files"
    else:
        result = nbb_keypoints(
            image_a,
            image_b,
            k=None if args.clean else args.k,
            fast=args.fast,
            size=args.size,
            k_per_level=args.k_per_level,
            precision=args.precision,
            device=args.device,
            progress=not args.quiet,
        )
        pa, pb, act = result
        found, levels = result.candidates, (result.levels if args.levels else [])
        if args.clean:
            pa, pb, act = clean_points(
                pa, pb, act, result.size_a, result.size_b, max_num_points=args.k, im_size=args.size
            )
        extra = {"fast": args.fast, "clean": args.clean, "pairs_before_selection": found}
        title = f"NBB{' fast' if args.fast else ''}{', DST-cleaned' if args.clean else ''}"
    seconds = time.perf_counter() - start
    meta = {
        "image_a": str(args.image_a),
        "image_b": str(args.image_b),
        "size_a_hw": list(image_a.shape[-2:]),
        "size_b_hw": list(image_b.shape[-2:]),
        **extra,
        "k": args.k,
        "working_size": args.size,
        "seconds": round(seconds, 2),
    }
    try:
        with run:
            try:
                _write(run.path, image_a, image_b, pa, pb, act, meta, f"{title}: {len(pa)} pairs", levels, args.height)
            except OSError as e:  # e.g. a full disk: nothing to resume, so RunDir drops the partial folder
                raise SemstyleError(
                    f"--out {run.final}: could not write {e.filename or run.path} ({e.strerror or e}); nothing was kept"
                ) from None
    except OSError as e:  # while finishing the folder: what is left keeps its .partial name
        raise SemstyleError(
            f"--out {run.final}: could not finish the folder ({e.strerror or e}); the incomplete "
            f"files are in {run.path}"
        ) from None
    what = "cleaning" if args.clean_only is not None or args.clean else "selection"
    print(f"{len(pa)} pairs ({found} before {what}) in {seconds:.1f} s")
    print(f"result: {run.final / 'correspondences.png'}")  # the closing lines of every command
    print(f"run folder: {run.final}")
    return run.final


def _write(folder: Path, image_a, image_b, pa, pb, act, meta, title, levels, height) -> None:
    from ..core.image import save_image
    from ..geometry.keypoints.io import write_correspondences
    from ..viz.points import draw_correspondences

    write_correspondences(folder, pa, pb, act, meta=meta)
    picture = draw_correspondences(image_a, image_b, pa, pb, height=height, title=title)
    save_image(_small(picture), folder / "correspondences.png")
    for level in levels:
        picture = draw_correspondences(
            image_a,
            image_b,
            level.points_a,
            level.points_b,
            height=height,
            title=f"{level.layer}: {len(level.activation)} best buddies",
        )
        save_image(_small(picture), folder / f"level_{level.layer}.png")
