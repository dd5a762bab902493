"""Sub-command ``semstyle doodle``: semantic style transfer with colour-coded maps (neural doodle) or CNNMRF.

    semstyle doodle --style painting.jpg --style-map painting_sem.png --target-map doodle.png [--size 512]
    semstyle doodle --style painting.jpg --style-map painting_sem.png --content photo.jpg --target-map photo_sem.png
    semstyle doodle --style painting.jpg --content photo.jpg --auto-maps 4
    semstyle doodle configs/doodle/monet.yaml --size 256 --set semantic.weight=0
    semstyle doodle --cnnmrf --style painting.jpg --content photo.jpg

Options override the config file (if any); ``--set key=value ...`` passes any other config key.
"""

from __future__ import annotations

from .cli import add_overrides_option, run_and_report

# (command-line option, config key)
OPTIONS = (
    ("style", "style.image"), ("style_map", "style.map"), ("target_map", "target.map"), ("content", "content.image"),
    ("loss", "style.loss"), ("semantic_weight", "semantic.weight"), ("auto_maps", "semantic.auto_maps"),
    ("auto_features", "semantic.auto_features"), ("size", "size"), ("steps", "steps"), ("phases", "phases"),
    ("init", "init"), ("seed", "seed"), ("precision", "precision"), ("device", "device"), ("out", "out_dir"),
)


def overrides_from(args) -> list[str]:
    """``key=value`` overrides for the options given on the command line."""
    out = []
    for option, key in OPTIONS:
        value = getattr(args, option)
        if value is not None:
            out.append(f"{key}={value}")
    if args.resize_maps:
        out.append("semantic.resize_maps=true")
    if args.cnnmrf:
        out.append("method=cnnmrf")
    return out + list(args.overrides)


def _doodle(args) -> None:
    config = args.config if args.config is not None else {"method": "cnnmrf" if args.cnnmrf else "doodle"}
    run_and_report(config, overrides_from(args), ["sheet.png"])


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("doodle", help="paint a colour-coded map (or a photo) with a painting's patches, "
                                             "region by region (neural doodle / CNNMRF)")
    p.add_argument("config", nargs="?", help="optional YAML config (e.g. configs/doodle/monet.yaml)")
    p.add_argument("--style", help="the style painting")
    p.add_argument("--style-map", help="colour-coded map of the painting (same size)")
    p.add_argument("--target-map", help="the doodle to paint (or the content photo's map), same colour code")
    p.add_argument("--content", help="optional content photo (its map is --target-map)")
    p.add_argument("--auto-maps", type=int, metavar="N", help="no maps: segment style and content into N regions")
    p.add_argument("--auto-features", choices=("color", "vgg"), help="what --auto-maps clusters (default color)")
    p.add_argument("--resize-maps", action="store_true", help="resize maps whose size differs from their image")
    p.add_argument("--loss", choices=("mrf", "gram_masked"), help="style loss (default mrf)")
    p.add_argument("--semantic-weight", type=float, help="weight of the maps in the patch matching (default 10)")
    p.add_argument("--cnnmrf", action="store_true", help="plain CNNMRF defaults (content + style, no maps)")
    p.add_argument("--size", type=int, help="long side of the result in px (default 512)")
    p.add_argument("--steps", type=int, help="L-BFGS steps per phase (default 100)")
    p.add_argument("--phases", type=int, help="coarse-to-fine phases (default 3)")
    p.add_argument("--init", help="noise (default), content, style or an image file")
    p.add_argument("--seed", type=int)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"))
    p.add_argument("--device")
    p.add_argument("--out", help="run folder (default runs/doodle-<time>)")
    add_overrides_option(p, "mrf.stride=2 tv_weight=0")
    p.set_defaults(func=_doodle)
