"""``semstyle train CONFIG [key=value ...]`` and ``semstyle stylize [--model M] INPUT... [--size N] [--out DIR]``:
the feed-forward networks of :mod:`semstyle.feedforward`."""

from __future__ import annotations

from ..conf import check_run_folder, load_train_config
from ..conf.checks import check_stylize_inputs
from ..conf.feedforward import FeedForwardConfig, check_train_files
from ..conf.vocab import PRECISIONS, SHIPPED_MODELS
from .commands import _api, add_run_options, common_overrides, split_config


def _train(args) -> None:
    config, overrides = split_config(args.config, args.overrides)
    overrides = overrides + common_overrides(args)
    cfg = load_train_config(config, overrides)  # a config or file error answers before torch loads
    check_train_files(cfg)
    check_run_folder(cfg.out_dir)
    path = _api().train(config, overrides)
    print(f"result: {path / 'model.safetensors'}")  # the closing lines of every command that writes a run folder
    print(f"samples: {path / 'samples'}")
    print(f"run folder: {path}")


def add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a feed-forward stylisation network (Multimodal hierarchy or the Johnson baseline)",
        description="Train a feed-forward network on a folder of photos for one style image; resume=true continues "
        "an interrupted run from its last checkpoint.",
    )
    p.add_argument("config", nargs="?", help="training config, e.g. configs/feedforward/multimodal.yaml")
    default = FeedForwardConfig()
    add_run_options(p, f"steps={default.steps // 10} batch_size=2 data=[photos/] size=512 scales=[128,256]")
    p.set_defaults(func=_train)


def _stylize(args) -> None:
    check_stylize_inputs(args.model, args.inputs, args.out, args.size, args.batch)  # before torch loads
    written = _api().stylize(
        args.model,
        args.inputs,
        out_dir=args.out,
        size=args.size,
        batch=args.batch,
        device=args.device or "auto",
        precision=args.precision or "auto",
    )
    for path in written:
        print(f"result: {path}")


def add_stylize(sub) -> None:
    p = sub.add_parser(
        "stylize",
        help="stylise images, folders and videos with a trained feed-forward model, in one pass each",
        description="Videos are read and written with OpenCV frame by frame (mp4v); their audio is dropped.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="images, folders of images, videos")
    p.add_argument(
        "--model",
        default="multimodal",
        help=f"a .safetensors model file, or a bundled model: {', '.join(SHIPPED_MODELS)} (default multimodal)",
    )
    p.add_argument(
        "--size",
        type=int,
        help="long side of the output in px (default: the input's); a Multimodal model answers from the stage "
        "trained nearest it",
    )
    p.add_argument("--out", default="stylized", help="output folder (default ./stylized)")
    p.add_argument("--batch", type=int, default=4, help="images per network pass (default 4)")
    p.add_argument("--device", help="auto, cpu or cuda")
    p.add_argument("--precision", choices=PRECISIONS, help="auto (bf16 where native), fp32, bf16")
    p.set_defaults(func=_stylize)
