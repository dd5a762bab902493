"""Gatys, Ecker & Bethge (2016), "Image Style Transfer Using Convolutional Neural Networks", with the extensions
from the follow-up literature.

Minimises ``α·L_content + β·Σ_i w_i L_style(x, a_i) + λ·TV + γ·L_lap`` over the pixels, with content on ``conv4_2``
and Gram style losses on ``conv1_1 ... conv5_1`` (equal weights), optionally coarse to fine. Extensions:

- several style images ``a_i`` blended with weights ``w_i`` (Gatys et al. 2016, Sec. 4; ``style_weights``), each
  optionally with its own layers;
- colour preservation (Gatys, Bethge, Hertzmann & Shechtman 2016): ``color.preserve: luminance`` (transfer on the
  luminance only, then take the content's chroma) or ``histogram`` (style colours matched to the content's first);
- the Laplacian loss of Li et al. (2017) (``laplacian.weight``), see :mod:`semstyle.losses.laplacian`;
- average or max pooling in the encoder (``pooling``).
"""

from __future__ import annotations

import os

import torch
from omegaconf import ListConfig
from torch import nn

from ..checks import check_sizes
from ..color import HISTOGRAM_METHODS, PRESERVE_MODES, combine_luminance, luminance, match_color, match_luminance
from ..config import check_choice, check_number, load_config, scale_schedule
from ..encoder import LAYER_NAMES, check_layers, vgg19_encoder
from ..errors import check
from ..image import as_image, resize
from ..losses import ContentLoss, GramLoss, TVLoss, gram_loss, gram_matrix
from ..losses.laplacian import LaplacianLoss
from ..objective import Objective
from ..optim import OPTIMIZERS, optimize
from ..runs import RunDir
from ..schedule import INITS, coarse_to_fine, frame_saver, init_image

GATYS_STYLE_LAYERS = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]  # Gatys et al. 2016, Sec. 3

DEFAULTS = {
    "content": "assets/content/tubingen.jpg",
    "style": "assets/styles/starry_night.jpg",  # one path, or a list of paths to blend
    "style_weights": None,  # blend weight per style image; None = equal
    "style_weights_normalize": True,  # divide the blend weights by their sum (Gatys 2016 / neural-style blend)
    "size": 384,
    "steps": 100,
    "content_weight": 1.0e-3,  # α
    "style_weight": 1.0e-6,  # β: chosen by eye on the bundled images; Caffe units make losses ~1e6x torchvision-based ones
    "tv_weight": 0.0,
    "content_layers": ["conv4_2"],  # Gatys et al. 2016, Sec. 2.2
    "style_layers": GATYS_STYLE_LAYERS,  # one list for all styles, or a list of lists, one per style image
    "style_layer_weights": None,  # None = equal, w_l = 1/L; a list (per layer) or a list of lists (per style)
    "style_scale": 1.0,  # style image long side = scale long side × style_scale
    "init": "content",  # noise | content | style | <image file>
    "optimizer": "lbfgs",  # lbfgs | adam
    "lr": None,  # None = the optimiser's default
    "pooling": "avg",  # Gatys et al. 2016, Sec. 2: average pooling "improves the gradient flow and one obtains
    #                    slightly more appealing results" (max = the network as trained)
    "color": {
        "preserve": "none",  # none | luminance | histogram (Gatys, Bethge, Hertzmann & Shechtman 2016)
        "histogram_method": "sqrt",  # sqrt (Σ^½ map, the paper's choice) | cholesky
    },
    "laplacian": {
        "weight": 0.0,  # γ; 0 = off. lap_style.lua uses 100 on 0-255 images with content weight 5: 1e3 here
        "pool_sizes": [4, 16],  # p of Li et al. 2017 (p = 4 alone by default there; 4 with 16 in their combinations)
        "pool_weights": None,  # relative weight per pool size; None = 1 each
    },
}


# -- config ------------------------------------------------------------------------------------------------------

def _is_list(value) -> bool:
    return isinstance(value, (list, tuple, ListConfig))


def style_paths(style) -> list:
    """``style`` (one path or a list of them) as a non-empty list."""
    styles = list(style) if _is_list(style) else [style]
    check(len(styles) > 0, "style: the list of style images is empty; give at least one")
    return styles


def _numbers(values, key: str) -> list[float]:
    check(_is_list(values), f"{key}: must be a list of numbers, got {values!r}")
    for v in values:
        check(isinstance(v, (int, float)) and not isinstance(v, bool), f"{key}: must be numbers, got {v!r}")
        check(v >= 0, f"{key}: must be >= 0, got {v}")
    return [float(v) for v in values]


def style_plan(cfg, n_styles: int) -> list[tuple[float, list[str], list[float] | None]]:
    """Per style image: ``(blend weight w_i, layers, layer weights or None)``, checked against ``n_styles``."""
    if cfg.style_weights is None:
        blend = [1.0] * n_styles
    else:
        blend = _numbers(cfg.style_weights, "style_weights")
        check(len(blend) == n_styles, f"style_weights: {len(blend)} weights given for {n_styles} style images")
    check(isinstance(cfg.style_weights_normalize, bool),
          f"style_weights_normalize: must be true or false, got {cfg.style_weights_normalize!r}")
    check(sum(blend) > 0, f"style_weights: must not all be 0, got {blend}")
    if cfg.style_weights_normalize:
        blend = [w / sum(blend) for w in blend]

    layers = cfg.style_layers
    check(_is_list(layers) and len(layers) > 0, "style_layers: must name at least one layer")
    per_style = all(_is_list(entry) for entry in layers)
    check(per_style or not any(_is_list(entry) for entry in layers),
          "style_layers: give one list of layers, or one list per style image, not a mix")
    if per_style:
        check(len(layers) == n_styles, f"style_layers: {len(layers)} layer lists given for {n_styles} style images")
    layer_lists = [list(entry) for entry in layers] if per_style else [list(layers)] * n_styles
    for entry in layer_lists:
        check(len(entry) > 0, "style_layers: a style image's layer list is empty; name at least one layer")
        check_layers(entry)

    weights = cfg.style_layer_weights
    if weights is None:
        weight_lists = [None] * n_styles
    elif _is_list(weights) and len(weights) > 0 and all(w is None or _is_list(w) for w in weights):
        check(len(weights) == n_styles, f"style_layer_weights: {len(weights)} lists given for {n_styles} style images")
        weight_lists = [None if w is None else _numbers(w, "style_layer_weights") for w in weights]
    else:
        weight_lists = [_numbers(weights, "style_layer_weights")] * n_styles
    for entry, w in zip(layer_lists, weight_lists):
        check(w is None or len(w) == len(entry),
              f"style_layer_weights: {len(w) if w else 0} weights given for the {len(entry)} layers {entry}")
    return list(zip(blend, layer_lists, weight_lists))


def validate(cfg) -> None:
    for key in ("content_weight", "style_weight", "tv_weight", "laplacian.weight"):
        check_number(cfg, key, lo=0)
    check_number(cfg, "style_scale", lo=0, lo_open=True)
    check_choice(cfg, "optimizer", OPTIMIZERS)
    check_choice(cfg, "pooling", ("max", "avg"))
    check_choice(cfg, "color.preserve", PRESERVE_MODES)
    check_choice(cfg, "color.histogram_method", HISTOGRAM_METHODS)
    if cfg.lr is not None:
        check_number(cfg, "lr", lo=0, lo_open=True)
    check_layers(cfg.content_layers)
    styles = style_paths(cfg.style)
    for s in styles:
        check(isinstance(s, str) and s != "", f"style: each style image must be a file path, got {s!r}")
    style_plan(cfg, len(styles))
    pools = cfg.laplacian.pool_sizes
    check(_is_list(pools) and len(pools) > 0, "laplacian.pool_sizes: give at least one pool size, e.g. [4, 16]")
    for p in pools:
        check(isinstance(p, int) and not isinstance(p, bool) and p >= 1,
              f"laplacian.pool_sizes: each must be an integer >= 1, got {p!r}")
    if cfg.laplacian.pool_weights is not None:
        pool_weights = _numbers(cfg.laplacian.pool_weights, "laplacian.pool_weights")
        check(len(pool_weights) == len(pools),
              f"laplacian.pool_weights: {len(pool_weights)} weights given for {len(pools)} pool sizes")
    check(cfg.init in INITS or isinstance(cfg.init, str), f"init: {cfg.init!r} is not noise, content, style or a file")


# -- losses ------------------------------------------------------------------------------------------------------

class BlendedStyleLoss(nn.Module):
    """``Σ_i w_i L_style(x, a_i)``: one :class:`GramLoss` (layers, layer weights, cached target Grams) per style
    image; the output's Gram of each layer is computed once and compared with every style's target."""

    def __init__(self, plan):
        super().__init__()
        self.blend = [w for w, _, _ in plan]
        self.styles = nn.ModuleList(GramLoss(layers, weights) for _, layers, weights in plan)
        used = {layer for w, term in zip(self.blend, self.styles) if w != 0 for layer in term.layers}
        self.layers = tuple(layer for layer in LAYER_NAMES if layer in used)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        grams = {layer: gram_matrix(features[layer]) for layer in self.layers}
        return sum(
            w * sum(lw * gram_loss(grams[layer], term.targets[layer]) for layer, lw in term.weights.items())
            for w, term in zip(self.blend, self.styles) if w != 0
        )


# -- transfer ----------------------------------------------------------------------------------------------------

def build_objective(cfg, plan, encoder) -> Objective:
    """The Gatys objective of a resolved config: terms ``content``, ``style`` (a :class:`BlendedStyleLoss` built
    from ``plan``, see :func:`style_plan`), ``tv`` and, when its weight is > 0, ``laplacian``."""
    lap_weight = cfg.laplacian.weight
    return Objective(encoder, {
        "content": (ContentLoss(cfg.content_layers), cfg.content_weight),
        "style": (BlendedStyleLoss(plan), cfg.style_weight),
        "tv": (TVLoss(), cfg.tv_weight),
        **({"laplacian": (LaplacianLoss(cfg.laplacian.pool_sizes, cfg.laplacian.pool_weights), lap_weight)}
           if lap_weight > 0 else {}),
    })


@torch.no_grad()
def set_targets(objective: Objective, content: torch.Tensor, styles: list[torch.Tensor]) -> None:
    """Cache every active term's target: content features (and Laplacians), each style's Grams."""
    terms = objective.terms
    if "content" in terms:
        terms["content"].set_target(objective.features(content, terms["content"].layers))
    if "laplacian" in terms:
        terms["laplacian"].set_target({"image": content})
    if "style" in terms:
        for w, term, style in zip(terms["style"].blend, terms["style"].styles, styles):
            if w != 0:
                term.set_target(objective.features(style, term.layers))


def _grey3(image: torch.Tensor) -> torch.Tensor:
    """A ``(B, 1, H, W)`` luminance image as the 3-channel grey image VGG reads (a view: gradients sum back)."""
    return image.expand(-1, 3, -1, -1)


def transfer(content: torch.Tensor, style, cfg, run: RunDir | None = None) -> torch.Tensor:
    """Run Gatys transfer with a resolved config; returns the result ``(1, 3, H, W)`` in [0, 1].

    ``content`` and ``style`` are paths or ``(1, 3, H, W)`` tensors; ``style`` may be a list of them (any sizes),
    blended by ``cfg.style_weights``.
    """
    content = as_image(content, "content image")
    styles = [as_image(s, "style image") for s in style_paths(style)]
    plan = style_plan(cfg, len(styles))
    style_layers = [layer for _, layers, _ in plan for layer in layers]  # the output goes through all of them
    check_sizes({"content image": content}, scale_schedule(cfg), list(cfg.content_layers) + style_layers)
    check_sizes({f"style image {i + 1}": s for i, s in enumerate(styles)}, scale_schedule(cfg), style_layers,
                scale=cfg.style_scale, floor=16)
    preserve = cfg.color.preserve
    if preserve == "histogram":  # Gatys et al. 2016 (colour), Sec. 2.2: recolour the style, then transfer
        styles = [match_color(s, content, cfg.color.histogram_method).clamp(0, 1) for s in styles]
    grey = preserve == "luminance"
    if grey:  # Sec. 2.1: transfer luminance only, the style's matched to the content's mean and std
        target = content
        content = luminance(content)
        styles = [match_luminance(luminance(s), content).clamp(0, 1) for s in styles]
    view = _grey3 if grey else (lambda image: image)

    encoder = vgg19_encoder(cfg.pooling, cfg.precision, cfg.device)
    objective = build_objective(cfg, plan, encoder)
    log = run.log if run is not None else None
    torch.manual_seed(cfg.seed)

    def scale_fn(index: int, long_side: int, previous: torch.Tensor | None) -> torch.Tensor:
        content_s = resize(content, long_side).to(encoder.device)
        styles_s = [resize(s, max(16, round(long_side * cfg.style_scale))).to(encoder.device) for s in styles]
        set_targets(objective, view(content_s), [view(s) for s in styles_s])
        shape = content_s.shape[-2:]
        if previous is None:
            start = init_image(cfg.init, content_s, styles_s[0], shape, cfg.seed)
            if grey and start.shape[1] == 3:  # noise or an init file
                start = luminance(start)
        else:
            start = resize(previous, tuple(shape))
        # contiguous: L-BFGS flattens the gradient with .view(), which a channels-last loaded image would break
        image = start.to(encoder.device).contiguous().requires_grad_(True)
        optimize(
            [image], lambda: objective(view(image)), cfg.steps, cfg.optimizer, cfg.lr,
            project=lambda: image.clamp_(0, 1), log=log, scale=index,
            on_step=frame_saver(run, cfg.save_every, index, view(image.detach())),
            desc=f"gatys {long_side}px", progress=cfg.progress,
        )
        return image.detach().cpu()

    result = coarse_to_fine(scale_schedule(cfg), scale_fn, run)
    if grey:
        result = combine_luminance(result, resize(target, tuple(result.shape[-2:])))
    return result


def _style_config_entry(style, index: int) -> str:
    return os.fspath(style) if isinstance(style, (str, os.PathLike)) else f"<tensor {index + 1}>"


def stylize(content, style, **options) -> torch.Tensor:
    """Python API: ``stylize(content, style, size=256, steps=50, ...)`` with any key of the config.

    ``content`` is an image path or a ``(1, 3, H, W)`` tensor in [0, 1]; ``style`` is one such image or a list of
    them (multi-style, with ``style_weights=[...]``). Nested keys as dicts: ``color={"preserve": "luminance"}``.
    Returns the result tensor.
    """
    styles = style_paths(style)
    options["style"] = [_style_config_entry(s, i) for i, s in enumerate(styles)]
    cfg = load_config({"method": "gatys", **options})
    return transfer(content, styles, cfg)


def run(cfg, run_dir: RunDir) -> torch.Tensor:
    output = transfer(cfg.content, style_paths(cfg.style), cfg, run_dir)
    run_dir.save_image("output.png", output)
    return output
