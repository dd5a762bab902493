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
from torch import nn

from ..conf import load, scale_schedule
from ..conf.gatys import GATYS, style_paths, style_plan
from ..conf.sizes import check_method_sizes
from ..core.color import combine_luminance, luminance, match_color, match_luminance
from ..core.encoder import LAYER_NAMES
from ..core.image import as_image, resize
from ..engine import Engine, Objective, Problem, pixel_problem
from ..engine.start import init_image
from ..losses import ContentLoss, GramLoss, TVLoss, gram_loss, gram_matrix
from ..losses.laplacian import LaplacianLoss

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
            for w, term in zip(self.blend, self.styles)
            if w != 0
        )


# -- transfer ----------------------------------------------------------------------------------------------------


def build_objective(cfg, plan, encoder) -> Objective:
    """The Gatys objective of a resolved config: terms ``content``, ``style`` (a :class:`BlendedStyleLoss` built
    from ``plan``, see :func:`style_plan`), ``tv`` and, when its weight is > 0, ``laplacian``."""
    lap_weight = cfg.laplacian.weight
    return Objective(
        encoder,
        {
            "content": (ContentLoss(cfg.content_layers), cfg.content_weight),
            "style": (BlendedStyleLoss(plan), cfg.style_weight),
            "tv": (TVLoss(cfg.tv_power), cfg.tv_weight),
            **(
                {"laplacian": (LaplacianLoss(cfg.laplacian.pool_sizes, cfg.laplacian.pool_weights), lap_weight)}
                if lap_weight > 0
                else {}
            ),
        },
    )


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


def transfer(content: torch.Tensor, style, cfg, engine: Engine | None = None) -> torch.Tensor:
    """Run Gatys transfer with a resolved config; returns the result ``(1, 3, H, W)`` in [0, 1].

    ``content`` and ``style`` are paths or ``(1, 3, H, W)`` tensors; ``style`` may be a list of them (any sizes),
    blended by ``cfg.style_weights``.
    """
    engine = engine or Engine(cfg)
    content = as_image(content, "content image")
    styles = [as_image(s, "style image") for s in style_paths(style)]
    plan = style_plan(cfg, len(styles))
    check_method_sizes(cfg, content, styles)
    preserve = cfg.color.preserve
    if preserve == "histogram":  # Gatys et al. 2016 (colour), Sec. 2.2: recolour the style, then transfer
        styles = [match_color(s, content, cfg.color.histogram_method).clamp(0, 1) for s in styles]
    grey = preserve == "luminance"
    if grey:  # Sec. 2.1: transfer luminance only, the style's matched to the content's mean and std
        target = content
        content = luminance(content)
        styles = [match_luminance(luminance(s), content).clamp(0, 1) for s in styles]
    view = _grey3 if grey else (lambda image: image)

    encoder = engine.encoder(cfg.pooling)
    objective = build_objective(cfg, plan, encoder)

    def scale_fn(index: int, long_side: int, previous: torch.Tensor | None) -> Problem:
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
        return pixel_problem(
            image,
            lambda: objective(view(image)),
            cfg.optimizer,
            cfg.lr,
            f"gatys {long_side}px",
            picture=lambda: view(image.detach()),
            clamp=cfg.clamp,
        )

    result = engine.run(scale_schedule(cfg), scale_fn)
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
    cfg = load(GATYS, options)
    return transfer(content, styles, cfg)


def solve(cfg, engine: Engine) -> dict[str, torch.Tensor]:
    """The method's entry for :func:`semstyle.api.run`: ``{"output": result}``."""
    return {"output": transfer(cfg.content, style_paths(cfg.style), cfg, engine)}
