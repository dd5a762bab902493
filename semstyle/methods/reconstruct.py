"""Content and style reconstructions, the visual experiments of Gatys, Ecker & Bethge (2015, 2016, Fig. 1).

Starting from white noise, optimise an image so that

- ``target: content``: its features on ONE layer match the image's (content loss), one reconstruction per layer
  in ``layers``: low layers give back the pixels almost exactly, high layers keep the objects and their layout
  but not the exact pixels;
- ``target: style``: its Gram matrices on a SET of layers match the image's (texture synthesis, Gatys, Ecker &
  Bethge 2015), for the growing subsets ``[l1]``, ``[l1, l2]``, ... of ``layers`` (``growing: false``: one
  reconstruction from all of them): the larger the set, the larger the structures of the texture.

Writes ``output.png`` (the input and every reconstruction side by side, captioned) and one
``<target>_<layers>.png`` per reconstruction. Config: ``semstyle run configs/gatys/reconstruct_content.yaml``;
shortcut: ``semstyle reconstruct content|style IMAGE --layers ...``.
"""

from __future__ import annotations

import os

import torch
from omegaconf import ListConfig

from ..checks import check_sizes
from ..config import check_choice, check_number, load_config, scale_schedule
from ..encoder import check_layers, vgg19_encoder
from ..errors import check
from ..features_view import captioned_row
from ..image import load_image, resize
from .gatys import DEFAULTS as GATYS
from ..losses import ContentLoss, GramLoss, TVLoss
from ..objective import Objective
from ..optim import OPTIMIZERS, optimize
from ..runs import RunDir
from ..schedule import coarse_to_fine, frame_saver, init_image

TARGETS = ("content", "style")

DEFAULTS = {
    "image": "assets/content/tubingen.jpg",
    "target": "content",  # content | style
    "layers": ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"],  # the layers of Gatys et al. 2016, Fig. 1
    "growing": True,  # style: subsets [l1], [l1, l2], ... (Fig. 1); false: one reconstruction from all layers
    "size": 256,
    "steps": 200,
    "init": "noise",  # white noise, as in the paper; or content (the image itself) | <image file>
    "optimizer": "lbfgs",  # Gatys et al. 2016, Sec. 2.1: L-BFGS works best for image synthesis
    "lr": None,
    # The Gatys α and β: the loss is the same whatever its scale mathematically, but L-BFGS in float32 stalls or
    # diverges on the raw Caffe-unit Gram loss (~1e8 at conv2_1), so keep it in the range transfer works in.
    "content_weight": GATYS["content_weight"],
    "style_weight": GATYS["style_weight"],
    "tv_weight": 0.0,
    "pooling": "avg",  # Gatys et al. 2016: average pooling for image synthesis
}


def validate(cfg) -> None:
    check_choice(cfg, "target", TARGETS)
    check(isinstance(cfg.layers, ListConfig), f"layers: must be a list of layers, got {cfg.layers!r}")
    check(len(cfg.layers) > 0, "layers: name at least one layer, e.g. [conv4_2]")
    check_layers(cfg.layers)
    check(isinstance(cfg.growing, bool), f"growing: must be true or false, got {cfg.growing!r}")
    for key in ("content_weight", "style_weight", "tv_weight"):
        check_number(cfg, key, lo=0)
    check_choice(cfg, "optimizer", OPTIMIZERS)
    check_choice(cfg, "pooling", ("max", "avg"))
    if cfg.lr is not None:
        check_number(cfg, "lr", lo=0, lo_open=True)
    check(cfg.init != "style", "init: style is not available for reconstructions; use noise, content or a file")
    check(isinstance(cfg.init, str) and cfg.init != "", f"init: {cfg.init!r} is not noise, content or a file")


def layer_sets(cfg) -> list[list[str]]:
    """The layer set of each reconstruction: single layers (content), growing subsets or all layers (style)."""
    layers = list(cfg.layers)
    if cfg.target == "content":
        return [[layer] for layer in layers]
    return [layers[: i + 1] for i in range(len(layers))] if cfg.growing else [layers]


def reconstruct_one(image: torch.Tensor, target: str, layers, cfg, run: RunDir | None = None, index: int = 0,
                    ) -> torch.Tensor:
    """One reconstruction of ``image`` ``(1, 3, H, W)`` from its ``target`` (content|style) features on ``layers``."""
    encoder = vgg19_encoder(cfg.pooling, cfg.precision, cfg.device)
    term = ContentLoss(layers) if target == "content" else GramLoss(layers)
    weight = cfg.content_weight if target == "content" else cfg.style_weight
    check(weight > 0, f"{target}_weight: must be > 0 for a {target} reconstruction")
    objective = Objective(encoder, {target: (term, weight), "tv": (TVLoss(), cfg.tv_weight)})
    torch.manual_seed(cfg.seed)

    def scale_fn(_, long_side: int, previous: torch.Tensor | None) -> torch.Tensor:
        image_s = resize(image, long_side).to(encoder.device)
        with torch.no_grad():
            term.set_target(objective.features(image_s, term.layers))
        shape = image_s.shape[-2:]
        start = init_image(cfg.init, image_s, None, shape, cfg.seed) if previous is None else resize(previous, tuple(shape))
        x = start.to(encoder.device).contiguous().requires_grad_(True)
        optimize([x], lambda: objective(x), cfg.steps, cfg.optimizer, cfg.lr, project=lambda: x.clamp_(0, 1),
                 log=run.log if run is not None else None, scale=index,
                 on_step=frame_saver(run, cfg.save_every, index, x.detach()),
                 desc=f"{target} {'+'.join(layers)} {long_side}px", progress=cfg.progress)
        return x.detach().cpu()

    # No per-scale checkpoints: the reconstructions are independent and short; a resumed run redoes them.
    return coarse_to_fine(scale_schedule(cfg), scale_fn)


def reconstruct(image: torch.Tensor, cfg, run: RunDir | None = None) -> list[tuple[str, torch.Tensor]]:
    """All reconstructions the config asks for: ``[(name, (1, 3, H, W) image), ...]``."""
    check(isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[:2] == (1, 3),
          "image: expected a (1, 3, H, W) RGB tensor in [0, 1] or an image path")
    check_sizes({"image": image}, scale_schedule(cfg), cfg.layers)
    results = []
    for index, layers in enumerate(layer_sets(cfg)):
        name = layers[0] if len(layers) == 1 else f"{layers[0]}-{layers[-1]}"
        results.append((name, reconstruct_one(image.float(), cfg.target, layers, cfg, run, index)))
    return results


def _config(image, target: str, layers, options):
    entry = os.fspath(image) if isinstance(image, (str, os.PathLike)) else "<tensor>"
    cfg = load_config({"method": "reconstruct", "image": entry, "target": target, "layers": list(layers), **options})
    return cfg, (image if isinstance(image, torch.Tensor) else load_image(image, what="image"))


def reconstruct_content(image, layer: str = "conv4_2", **options) -> torch.Tensor:
    """Python API: the image reconstructed from white noise through its ``layer`` features (path or tensor)."""
    cfg, image = _config(image, "content", [layer], options)
    return reconstruct(image, cfg)[0][1]


def reconstruct_style(image, layers=("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"), **options) -> torch.Tensor:
    """Python API: a texture with the Gram matrices of ``image`` on all of ``layers`` (path or tensor)."""
    cfg, image = _config(image, "style", layers, {**options, "growing": False})
    return reconstruct(image, cfg)[0][1]


def run(cfg, run_dir: RunDir) -> torch.Tensor:
    image = load_image(cfg.image, what="image")
    results = reconstruct(image, cfg, run_dir)
    for name, result in results:
        run_dir.save_image(f"{cfg.target}_{name}.png", result)
    shown = resize(image, tuple(results[0][1].shape[-2:]))
    figure = captioned_row([shown] + [r for _, r in results], ["input"] + [n for n, _ in results])
    run_dir.save_image("output.png", figure)
    return results[-1][1]
