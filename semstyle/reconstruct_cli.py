"""Sub-commands for the Gatys visual experiments:

- ``semstyle reconstruct content IMAGE [--layers conv1_1 conv4_2 ...] [--size 256] [--steps 200] [--out DIR]``
- ``semstyle reconstruct style IMAGE [--layers conv1_1 ... conv5_1] [--no-growing] ...``
- ``semstyle features IMAGE [--layers conv1_1 conv2_1 ...] [--channels 16] [--out features.png]``

``reconstruct`` runs the ``reconstruct`` method (a run folder like ``semstyle run``); ``--set key=value ...`` passes
any other config override.
"""

from __future__ import annotations

from pathlib import Path

from .cli import add_overrides_option, run_and_report

FEATURE_LAYERS = ["conv1_1", "conv2_1", "conv3_1", "conv4_1"]


def _reconstruct(args) -> None:
    config = {"method": "reconstruct", "target": args.target, "image": args.image}
    if args.layers:
        config["layers"] = list(args.layers)
    for key in ("size", "steps", "precision", "pooling", "init", "seed"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if args.out is not None:
        config["out_dir"] = args.out
    if args.no_growing:
        config["growing"] = False
    run_and_report(config, list(args.overrides))


def _features(args) -> None:
    from .errors import check
    from .features_view import feature_view
    from .image import load_image, save_image

    check(args.size is None or 16 <= args.size <= 4096, f"--size: must be in [16, 4096], got {args.size}")
    image = load_image(args.image, args.size, what="image")
    figure = feature_view(image, args.layers, args.channels, args.tile, args.cmap, args.pooling, args.precision,
                          args.device)
    out = Path(args.out) if args.out else Path(args.image).with_name(Path(args.image).stem + "_features.png")
    save_image(figure, out)
    print(f"result: {out}")


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("reconstruct", help="reconstruct an image from its content or style (Gram) features")
    p.add_argument("target", choices=("content", "style"), help="content: one layer at a time; style: Gram matrices")
    p.add_argument("image", help="the image to reconstruct")
    p.add_argument("--layers", "--layer", nargs="+", metavar="LAYER",
                   help="content: one reconstruction per layer; style: growing subsets (default conv1_1 ... conv5_1)")
    p.add_argument("--no-growing", action="store_true", help="style: one reconstruction from all --layers together")
    p.add_argument("--size", type=int, help="long side in px (default 256)")
    p.add_argument("--steps", type=int, help="L-BFGS steps per reconstruction (default 200)")
    p.add_argument("--init", help="noise (default), content or an image file")
    p.add_argument("--pooling", help="avg (default) or max")
    p.add_argument("--precision", help="auto, fp32 or bf16")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="run folder (default runs/reconstruct-<time>)")
    add_overrides_option(p, "tv_weight=1e-3 progress=false")
    p.set_defaults(func=_reconstruct)

    p = subparsers.add_parser("features", help="grid of the first feature maps of VGG-19 layers for an image")
    p.add_argument("image")
    p.add_argument("--layers", "--layer", nargs="+", default=FEATURE_LAYERS, metavar="LAYER",
                   help=f"default {' '.join(FEATURE_LAYERS)}")
    p.add_argument("--channels", type=int, default=16, help="first N channels of each layer (default 16)")
    p.add_argument("--size", type=int, default=256, help="image long side fed to VGG (default 256)")
    p.add_argument("--tile", type=int, default=64, help="px per feature map in the figure (default 64)")
    p.add_argument("--cmap", default="viridis", help="matplotlib colour map (default viridis; gray for grey)")
    p.add_argument("--pooling", default="avg", choices=("avg", "max"))
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="output PNG (default IMAGE_features.png beside the image)")
    p.set_defaults(func=_features)
