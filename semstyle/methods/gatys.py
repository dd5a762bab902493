"""Gatys, Ecker & Bethge (2016), "Image Style Transfer Using Convolutional Neural Networks".

Minimises ``α·L_content + β·L_style + λ·TV`` over the pixels, with content on ``conv4_2`` and Gram style losses on
``conv1_1 ... conv5_1`` (equal weights), optionally coarse to fine.
"""

from __future__ import annotations

import torch

from ..config import check_choice, check_number, load_config, scale_schedule
from ..encoder import check_layers, vgg19_encoder
from ..errors import ConfigError, check
from ..image import load_image, resize
from ..losses import ContentLoss, GramLoss, TVLoss
from ..objective import Objective
from ..optim import OPTIMIZERS, optimize
from ..runs import RunDir
from ..schedule import INITS, coarse_to_fine, frame_saver, init_image

DEFAULTS = {
    "content": "assets/content/tubingen.jpg",
    "style": "assets/styles/starry_night.jpg",
    "size": 384,
    "steps": 100,
    "content_weight": 1.0e-3,  # α
    "style_weight": 1.0e-6,  # β: chosen by eye on the bundled images; Caffe units make losses ~1e6x torchvision-based ones
    "tv_weight": 0.0,
    "content_layers": ["conv4_2"],  # Gatys et al. 2016, Sec. 2.2
    "style_layers": ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"],
    "style_layer_weights": None,  # None = equal, w_l = 1/5
    "style_scale": 1.0,  # style image long side = scale long side × style_scale
    "init": "content",  # noise | content | style | <image file>
    "optimizer": "lbfgs",  # lbfgs | adam
    "lr": None,  # None = the optimiser's default
    "pooling": "avg",  # Gatys et al. 2016: average pooling "improves the gradient flow"
}


def validate(cfg) -> None:
    for key in ("content_weight", "style_weight", "tv_weight"):
        check_number(cfg, key, lo=0)
    check_number(cfg, "style_scale", lo=0, lo_open=True)
    check_choice(cfg, "optimizer", OPTIMIZERS)
    check_choice(cfg, "pooling", ("max", "avg"))
    if cfg.lr is not None:
        check_number(cfg, "lr", lo=0, lo_open=True)
    check(len(cfg.style_layers) > 0, "style_layers: must name at least one layer")
    check_layers(cfg.content_layers)
    check_layers(cfg.style_layers)
    check(cfg.init in INITS or isinstance(cfg.init, str), f"init: {cfg.init!r} is not noise, content, style or a file")


def _check_image(image: torch.Tensor, what: str) -> torch.Tensor:
    if not (isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[:2] == (1, 3)):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ConfigError(f"{what}: expected a (1, 3, H, W) RGB tensor in [0, 1] or an image path, got {shape}")
    return image.float()


def transfer(content: torch.Tensor, style: torch.Tensor, cfg, run: RunDir | None = None) -> torch.Tensor:
    """Run Gatys transfer with a resolved config; returns the result ``(1, 3, H, W)`` in [0, 1]."""
    content, style = _check_image(content, "content"), _check_image(style, "style")
    encoder = vgg19_encoder(cfg.pooling, cfg.precision, cfg.device)
    content_term, style_term = ContentLoss(cfg.content_layers), GramLoss(cfg.style_layers, cfg.style_layer_weights)
    objective = Objective(encoder, {
        "content": (content_term, cfg.content_weight),
        "style": (style_term, cfg.style_weight),
        "tv": (TVLoss(), cfg.tv_weight),
    })
    log = run.log if run is not None else None
    torch.manual_seed(cfg.seed)

    def scale_fn(index: int, long_side: int, previous: torch.Tensor | None) -> torch.Tensor:
        content_s = resize(content, long_side).to(encoder.device)
        style_s = resize(style, max(16, round(long_side * cfg.style_scale))).to(encoder.device)
        with torch.no_grad():
            content_term.set_target(objective.features(content_s, content_term.layers))
            style_term.set_target(objective.features(style_s, style_term.layers))
        shape = content_s.shape[-2:]
        if previous is None:
            start = init_image(cfg.init, content_s, style_s, shape, cfg.seed)
        else:
            start = resize(previous, tuple(shape))
        image = start.to(encoder.device).requires_grad_(True)
        optimize(
            [image], lambda: objective(image), cfg.steps, cfg.optimizer, cfg.lr,
            project=lambda: image.clamp_(0, 1), log=log, scale=index,
            on_step=frame_saver(run, cfg.save_every, index, image),
            desc=f"gatys {long_side}px", progress=cfg.progress,
        )
        return image.detach().cpu()

    return coarse_to_fine(scale_schedule(cfg), scale_fn, run)


def stylize(content, style, **options) -> torch.Tensor:
    """Python API: ``stylize(content, style, size=256, steps=50, ...)`` with any key of the config.

    ``content`` and ``style`` are image paths or ``(1, 3, H, W)`` tensors in [0, 1]. Returns the result tensor.
    """
    cfg = load_config({"method": "gatys", **options})
    if not isinstance(content, torch.Tensor):
        content = load_image(content, what="content image")
    if not isinstance(style, torch.Tensor):
        style = load_image(style, what="style image")
    return transfer(content, style, cfg)


def run(cfg, run_dir: RunDir) -> torch.Tensor:
    content = load_image(cfg.content, what="content image")
    style = load_image(cfg.style, what="style image")
    output = transfer(content, style, cfg, run_dir)
    run_dir.save_image("output.png", output)
    return output
