"""The commands that run a method (``run``, ``doodle``, ``reconstruct``) and ``features``.

Their help texts read the defaults from the config schemas (:mod:`semstyle.conf`), never from hand-written strings.
"""

from __future__ import annotations

import time
import warnings
from importlib.resources import files

from ..conf import check_input_files, check_run_folder, load_config
from ..conf.checks import check_image
from ..conf.doodle import CNNMRF_PRESET, DoodleConfig
from ..conf.gatys import ReconstructConfig
from ..conf.sizes import check_config_sizes
from ..conf.vocab import POOLINGS, PRECISIONS
from ..errors import check
from ..interrupts import deferred

DEFAULT_CONFIG = str(files("semstyle") / "conf" / "default.yaml")
"""``configs/default.yaml`` as shipped inside the package, so ``semstyle run`` works from any folder."""


def _api():
    # torch, kornia and the methods load here, when a command runs: --help and config errors answer without them;
    # a Ctrl-C during the import waits for its end (semstyle.interrupts)
    with deferred():
        from .. import api

    return api


def split_config(config, overrides) -> tuple[str | None, list[str]]:
    """``semstyle CMD key=value ...`` has no config file: the first positional is then an override."""
    if config is not None and "=" in config:
        return None, [config] + list(overrides)
    return config, list(overrides)


def base_config(config, overrides) -> str | None:
    """The config a command without a config file starts from: the demo's (:data:`DEFAULT_CONFIG`), unless the
    overrides name a method, which then starts from its own defaults (None), not from the demo's Gatys schedule
    (``semstyle run method=dst`` ran the demo's 100 steps at one scale instead of DST's 150 at each of three)."""
    if config is not None:
        return config
    return None if any(str(o).split("=", 1)[0].strip() == "method" for o in overrides) else DEFAULT_CONFIG


def add_run_options(parser, example: str) -> None:
    """The options every method command shares: overrides, ``--device``, ``--precision``, ``--out``, ``--seed``."""
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help=f"config overrides, e.g. {example}; file paths are read from the current folder, and "
        "'${asset:styles/shipwreck.jpg}' names an image bundled with semstyle",
    )
    parser.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        dest="set_overrides",
        help="the same overrides (older spelling)",
    )
    parser.add_argument("--device", help="auto, cpu or cuda (config key device)")
    parser.add_argument("--precision", choices=PRECISIONS, help="config key precision")
    parser.add_argument("--seed", type=int, help="config key seed")
    parser.add_argument("--out", help="run folder (config key out_dir; default runs/<method>-<time>)")


def common_overrides(args) -> list[str]:
    if args.set_overrides:
        warnings.warn(
            "--set KEY=VALUE: give the overrides as plain KEY=VALUE arguments", DeprecationWarning, stacklevel=2
        )
    out = []
    for option, key in (("device", "device"), ("precision", "precision"), ("seed", "seed"), ("out", "out_dir")):
        if getattr(args, option) is not None:
            out.append(f"{key}={getattr(args, option)}")
    return out + list(args.set_overrides)


def run_and_report(config, overrides, extra_files=()) -> None:
    """Run a method, then print the result's path, ``extra_files`` of its folder, and the folder."""
    # a config error, an unreadable input file or a used out_dir answers here, before torch and the methods load
    cfg = load_config(config, overrides)
    check_input_files(cfg)
    check_config_sizes(cfg)
    check_run_folder(cfg.out_dir)
    path = _api().run(cfg)
    print(f"result: {path / 'output.png'}")
    for name in extra_files:
        print(f"{name.rsplit('.', 1)[0]}: {path / name}")
    print(f"run folder: {path}")


# -- run ---------------------------------------------------------------------------------------------------------


def _run(args) -> None:
    config, overrides = split_config(args.config, args.overrides)
    overrides = overrides + common_overrides(args)
    run_and_report(base_config(config, overrides), overrides)


def add_run(sub) -> None:
    p = sub.add_parser("run", help="run a method from a YAML config with key=value overrides")
    p.add_argument(
        "config",
        nargs="?",
        help="config file (default: the bundled configs/default.yaml; with method=NAME, its defaults)",
    )
    add_run_options(p, "size=256 steps=50")
    p.set_defaults(func=_run)


# -- doodle ------------------------------------------------------------------------------------------------------

DOODLE_OPTIONS = (  # (command-line option, config key)
    ("style", "style"),
    ("style_map", "style_map"),
    ("content_map", "content_map"),
    ("content", "content"),
    ("loss", "style_loss"),
    ("semantic_weight", "semantic.weight"),
    ("auto_maps", "semantic.auto_maps"),
    ("auto_features", "semantic.auto_features"),
    ("size", "size"),
    ("steps", "steps"),
    ("phases", "phases"),
    ("init", "init"),
)


def _doodle(args) -> None:
    config, overrides = split_config(args.config, args.overrides)
    if config is None:
        config = {"method": "cnnmrf" if args.cnnmrf else "doodle"}
    given = [f"{key}={getattr(args, option)}" for option, key in DOODLE_OPTIONS if getattr(args, option) is not None]
    given += ["resize_maps=true"] * args.resize_maps + ["method=cnnmrf"] * args.cnnmrf
    run_and_report(config, given + common_overrides(args) + overrides, ["sheet.png"])


def _defaults(key: str) -> str:
    """``default D`` from the doodle schema, with the cnnmrf preset's value when it differs."""
    doodle = getattr(DoodleConfig(), key)
    cnnmrf = CNNMRF_PRESET.get(key, doodle)
    return f"default {doodle}" + (f"; --cnnmrf: {cnnmrf}" if cnnmrf != doodle else "")


def add_doodle(sub) -> None:
    p = sub.add_parser(
        "doodle",
        help="paint a colour-coded map (or a photo) with a painting's patches, "
        "region by region (neural doodle / CNNMRF)",
    )
    p.add_argument("config", nargs="?", help="optional YAML config (e.g. configs/doodle/monet.yaml)")
    p.add_argument("--style", help="the style painting")
    p.add_argument("--style-map", help="colour-coded map of the painting (same size)")
    p.add_argument(
        "--content-map",
        "--target-map",
        dest="content_map",
        help="the doodle to paint (or the content photo's map), same colour code",
    )
    p.add_argument("--content", help="optional content photo (its map is --content-map)")
    p.add_argument("--auto-maps", type=int, metavar="N", help="no maps: segment style and content into N regions")
    p.add_argument(
        "--auto-features",
        choices=("color", "vgg"),
        help=f"what --auto-maps clusters (default {DoodleConfig().semantic.auto_features})",
    )
    p.add_argument("--resize-maps", action="store_true", help="resize maps whose size differs from their image")
    p.add_argument("--loss", choices=("mrf", "gram_masked"), help=f"style loss (default {DoodleConfig().style_loss})")
    p.add_argument(
        "--semantic-weight",
        type=float,
        help=f"weight of the maps in the patch matching (default {DoodleConfig().semantic.weight}; "
        f"--cnnmrf: {CNNMRF_PRESET['semantic']['weight']})",
    )
    p.add_argument("--cnnmrf", action="store_true", help="plain CNNMRF defaults (content + style, no maps)")
    p.add_argument("--size", type=int, help=f"long side of the result in px ({_defaults('size')})")
    p.add_argument("--steps", type=int, help=f"L-BFGS steps per phase ({_defaults('steps')})")
    p.add_argument("--phases", type=int, help=f"coarse-to-fine phases ({_defaults('phases')})")
    p.add_argument(
        "--init",
        help=f"auto (content with a photo, else noise), noise, regions, content, style or an image "
        f"file ({_defaults('init')})",
    )
    add_run_options(p, "mrf.stride=2 tv_weight=0")
    p.set_defaults(func=_doodle)


# -- reconstruct -------------------------------------------------------------------------------------------------


def _reconstruct(args) -> None:
    config = {"method": "reconstruct", "target": args.target, "image": args.image}
    # `--layer conv4_2 size=64`: --layers takes every word after it, the overrides too; they are overrides
    layers = [word for word in args.layers or [] if "=" not in word]
    overrides = [word for word in args.layers or [] if "=" in word] + list(args.overrides)
    if layers:
        config["layers"] = layers
    for key in ("size", "steps", "pooling", "init"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if args.no_growing:
        config["growing"] = False
    run_and_report(config, common_overrides(args) + overrides)


def add_reconstruct(sub) -> None:
    defaults = ReconstructConfig()
    p = sub.add_parser("reconstruct", help="reconstruct an image from its content or style (Gram) features")
    p.add_argument("target", choices=("content", "style"), help="content: one layer at a time; style: Gram matrices")
    p.add_argument("image", help="the image to reconstruct")
    p.add_argument(
        "--layers",
        "--layer",
        nargs="+",
        metavar="LAYER",
        help=f"content: one reconstruction per layer; style: growing subsets (default {' '.join(defaults.layers)})",
    )
    p.add_argument("--no-growing", action="store_true", help="style: one reconstruction from all --layers together")
    p.add_argument("--size", type=int, help=f"long side in px (default {defaults.size})")
    p.add_argument(
        "--steps", type=int, help=f"{defaults.optimizer} steps per reconstruction (default {defaults.steps})"
    )
    p.add_argument("--init", help=f"noise, content or an image file (default {defaults.init})")
    p.add_argument("--pooling", choices=POOLINGS, help=f"default {defaults.pooling}")
    add_run_options(p, "tv_weight=1e-3 progress=false")
    p.set_defaults(func=_reconstruct)


# -- features ----------------------------------------------------------------------------------------------------

FEATURE_LAYERS = ["conv1_1", "conv2_1", "conv3_1", "conv4_1"]


def _features(args) -> None:
    check(args.size is None or 16 <= args.size <= 4096, f"--size: must be in [16, 4096], got {args.size}")
    check_image(args.image, "image")
    check_run_folder(args.out, "--out")
    # torch and matplotlib load when the command runs, once its input is checked (see _api)
    with deferred():
        from ..core.image import load_image
        from ..engine.runs import RunDir
        from ..viz.features import feature_view

    out = args.out or f"runs/features-{time.strftime('%Y%m%d-%H%M%S')}"
    with RunDir(out, "features", key="--out") as run_dir:
        image = load_image(args.image, args.size, what="image")
        figure = feature_view(
            image, args.layers, args.channels, args.tile, args.cmap, args.pooling, args.precision, args.device
        )
        run_dir.save_image("features.png", figure)
    print(f"result: {run_dir.path / 'features.png'}")
    print(f"run folder: {run_dir.path}")


def add_features(sub) -> None:
    p = sub.add_parser("features", help="grid of the first feature maps of VGG-19 layers for an image")
    p.add_argument("image")
    p.add_argument(
        "--layers",
        "--layer",
        nargs="+",
        default=FEATURE_LAYERS,
        metavar="LAYER",
        help=f"default {' '.join(FEATURE_LAYERS)}",
    )
    p.add_argument("--channels", type=int, default=16, help="first N channels of each layer (default 16)")
    p.add_argument("--size", type=int, default=256, help="image long side fed to VGG (default 256)")
    p.add_argument("--tile", type=int, default=64, help="px per feature map in the figure (default 64)")
    p.add_argument("--cmap", default="viridis", help="matplotlib colour map (default viridis; gray for grey)")
    p.add_argument("--pooling", default="avg", choices=POOLINGS)
    p.add_argument("--precision", default="auto", choices=PRECISIONS)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="run folder (default runs/features-<time>); features.png is written there")
    p.set_defaults(func=_features)
