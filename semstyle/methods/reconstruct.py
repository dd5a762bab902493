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

from ..conf import load, scale_schedule, steps_per_scale
from ..conf.gatys import RECONSTRUCT
from ..conf.sizes import check_method_sizes
from ..core.image import load_image, resize
from ..engine import Engine, Objective, Problem, pixel_problem
from ..engine.runs import RunDir
from ..engine.start import init_image
from ..errors import check
from ..losses import ContentLoss, GramLoss, TVLoss
from ..viz.layout import captioned_row


def layer_sets(cfg) -> list[list[str]]:
    """The layer set of each reconstruction: single layers (content), growing subsets or all layers (style)."""
    layers = list(cfg.layers)
    if cfg.target == "content":
        return [[layer] for layer in layers]
    return [layers[: i + 1] for i in range(len(layers))] if cfg.growing else [layers]


def reconstruct(image: torch.Tensor, cfg, engine: Engine | None = None) -> list[tuple[str, torch.Tensor]]:
    """All reconstructions the config asks for: ``[(name, (1, 3, H, W) image), ...]``.

    They run as one schedule (each reconstruction's scales in turn, started afresh from ``init``), so a
    resumed run keeps the finished ones.
    """
    check(
        isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[:2] == (1, 3),
        "image: expected a (1, 3, H, W) RGB tensor in [0, 1] or an image path",
    )
    check_method_sizes(cfg, image)
    engine = engine or Engine(cfg)
    encoder = engine.encoder(cfg.pooling)
    image = image.float()
    sets = layer_sets(cfg)
    sizes = scale_schedule(cfg)
    schedule = [(k, i) for k in range(len(sets)) for i in range(len(sizes))]
    done: dict[str, torch.Tensor] = {}

    def scale_fn(index: int, _, previous: torch.Tensor | None) -> Problem:
        k, i = schedule[index]
        layers, long_side = sets[k], sizes[i]
        term = ContentLoss(layers) if cfg.target == "content" else GramLoss(layers)
        weight = cfg.content_weight if cfg.target == "content" else cfg.style_weight
        objective = Objective(encoder, {cfg.target: (term, weight), "tv": (TVLoss(), cfg.tv_weight)})
        image_s = resize(image, long_side).to(encoder.device)
        with torch.no_grad():
            term.set_target(objective.features(image_s, term.layers))
        shape = image_s.shape[-2:]
        if i == 0:  # a new reconstruction starts from its own init, seeded as if it ran alone
            torch.manual_seed(cfg.seed)
            start = init_image(cfg.init, image_s, None, shape, cfg.seed)
        else:
            start = resize(previous, tuple(shape))
        x = start.to(encoder.device).contiguous().requires_grad_(True)

        def result() -> torch.Tensor:
            if i == len(sizes) - 1:
                done[f"reconstruction_{k}"] = x.detach().cpu().clone()  # kept apart from the image a checkpoint saves
            return x.detach().cpu()

        label = f"{cfg.target} {'+'.join(layers)} {long_side}px"
        return pixel_problem(x, lambda: objective(x), cfg.optimizer, cfg.lr, label, result=result)

    steps = steps_per_scale(cfg, len(sizes))
    engine.run([sizes[i] for _, i in schedule], scale_fn, done, steps=[steps[i] for _, i in schedule])
    return [(_name(layers), done[f"reconstruction_{k}"]) for k, layers in enumerate(sets)]


def _name(layers: list[str]) -> str:
    return layers[0] if len(layers) == 1 else f"{layers[0]}-{layers[-1]}"


def _config(image, target: str, layers, options):
    entry = os.fspath(image) if isinstance(image, (str, os.PathLike)) else "<tensor>"
    cfg = load(RECONSTRUCT, {"image": entry, "target": target, "layers": list(layers), **options})
    return cfg, (image if isinstance(image, torch.Tensor) else load_image(image, what="image"))


def reconstruct_content(image, layer: str = "conv4_2", **options) -> torch.Tensor:
    """Python API: the image reconstructed from white noise through its ``layer`` features (path or tensor)."""
    cfg, image = _config(image, "content", [layer], options)
    return reconstruct(image, cfg)[0][1]


def reconstruct_style(image, layers=("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"), **options) -> torch.Tensor:
    """Python API: a texture with the Gram matrices of ``image`` on all of ``layers`` (path or tensor)."""
    cfg, image = _config(image, "style", layers, {**options, "growing": False})
    return reconstruct(image, cfg)[0][1]


def solve(cfg, engine: Engine) -> dict:
    """The method's entry for :func:`semstyle.api.run`: every reconstruction, and the input beside them."""
    image = load_image(cfg.image, what="image")
    results = reconstruct(image, cfg, engine)
    shown = resize(image, tuple(results[0][1].shape[-2:]))
    figure = captioned_row([shown] + [r for _, r in results], ["input"] + [n for n, _ in results])
    return {"output": figure, "reconstructions": results}


def save(result: dict, cfg, run_dir: RunDir) -> None:
    for name, image in result["reconstructions"]:
        run_dir.save_image(f"{cfg.target}_{name}.png", image)
