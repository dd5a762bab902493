"""STROTSS: Kolkin, Salavon & Shakhnarovich (CVPR 2019), "Style Transfer by Relaxed Optimal Transport and
Self-Similarity".

Minimises ``(α·ℓ_self-similarity + ℓ_REMD + ℓ_moment + ℓ_palette/max(α,1)) / (α + 2)`` (see
:mod:`semstyle.losses.strotss`) over the levels of a Laplacian pyramid of the image, coarse to fine
(64 → 128 → 256 → 512 px), halving α at each finer scale. Optional spatial guidance: colour-coded region maps for
the content and the style (:mod:`semstyle.semantic`); locations in content region k are matched to style region k.

Defaults follow the reference code (nkolkin13/STROTSS ``styleTransfer.py``, ``st_helper.py``); see docs/strotss.md.
"""

from __future__ import annotations

import torch

from ..conf import load, scale_schedule
from ..conf.sizes import check_method_sizes
from ..conf.strotss import STROTSS
from ..core.image import as_image, load_image, resize, source_name
from ..core.pyramid import LaplacianPyramid, high_pass
from ..core.semantic import RegionMasks, check_map_size, load_map, semantic_masks
from ..engine import Engine, Objective, Problem
from ..errors import check
from ..losses.strotss import SamplePoints, SelfSimilarityLoss, StrotssStyleLoss, strotss_weights


def guidance_masks(
    content: torch.Tensor,
    style: torch.Tensor,
    content_map: torch.Tensor,
    style_map: torch.Tensor,
    resize_maps: bool = False,
    what: str = "content_map",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Region masks ``(1, K, H, W)`` of the content and ``(1, K, Hs, Ws)`` of the style, channel k the same region
    (``what`` names the content map in messages).

    Maps must have their image's size; their major colours are found by k-means and paired by nearest colour
    (:func:`semstyle.semantic.semantic_masks`), which tolerates JPEG noise in the maps.
    """
    content_map = check_map_size(content_map, content, what, "the content image", resize_maps, "resize_maps=true")
    style_map = check_map_size(style_map, style, "style_map", "the style image", resize_maps, "resize_maps=true")
    style_masks, content_masks, _ = semantic_masks(style_map, content_map, what=what)
    return content_masks, style_masks


def initial_image(init: str, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """The first scale's start: ``style_mean`` (the style's mean colour plus the content's finest pyramid band,
    reference ``styleTransfer.py``), ``content``, or an image file, at ``content``'s size."""
    if init == "style_mean":
        return style.mean(dim=(2, 3), keepdim=True) + high_pass(content)
    if init == "content":
        return content.clone()
    return load_image(init, tuple(content.shape[-2:]), what="init image").to(content.device)


def make_objective(encoder, cfg) -> Objective:
    """STROTSS's objective on ``encoder``: the self-similarity content term and the style terms (relaxed EMD,
    moments, colour) at ``cfg.samples`` locations shared by both and drawn anew before every step."""
    points = SamplePoints(cfg.samples, cfg.seed)
    style_term = StrotssStyleLoss(points, style_samples=cfg.style_samples, bf16=encoder.precision == "bf16")
    terms = {"content": (SelfSimilarityLoss(points), 1.0), "style": (style_term, strotss_weights(1.0)["style"])}
    return Objective(encoder, terms, before_step=(points.resample,))


def set_scale_targets(objective: Objective, content, style, long_side: int, index: int, cfg, regions=(None, None)):
    """Resize ``content`` and ``style`` for scale ``index`` (``long_side`` px, the style at ``cfg.style_scale``),
    set ``objective``'s weights, sample regions and targets there; returns the two resized images.

    ``regions`` are the content's and the style's :class:`RegionMasks` (or None) for spatial guidance.
    """
    device = objective.encoder.device
    content_s = resize(content, long_side).to(device)
    style_s = resize(style, max(16, round(long_side * cfg.style_scale))).to(device)
    # reference: content_weight /= 2 per scale
    objective.weights.update(strotss_weights(cfg.content_weight / 2**index, cfg.moment_weight))
    content_term, style_term = objective.terms["content"], objective.terms["style"]
    with torch.no_grad():
        content_term.points.set_regions(content_s.shape[-2:], regions[0], device)
        content_term.set_target(objective.features(content_s))
        style_term.set_target(objective.features(style_s), regions[1])
    return content_s, style_s


def transfer(content, style, cfg, engine: Engine | None = None, content_map=None, style_map=None) -> torch.Tensor:
    """Run STROTSS with a resolved config; returns the result ``(1, 3, H, W)`` in [0, 1].

    Images and maps are paths or ``(1, 3, H, W)`` tensors in [0, 1]; ``content_map``/``style_map``, colour-coded
    region maps of the two images, enable guidance.
    """
    engine = engine or Engine(cfg)
    content, style = as_image(content, "content image"), as_image(style, "style image")
    masks = None
    if content_map is not None or style_map is not None:
        check(
            content_map is not None and style_map is not None, "spatial guidance needs both content_map and style_map"
        )
        what = source_name("content_map", content_map)
        content_map, style_map = (
            as_image(content_map, "content_map", load_map),
            as_image(style_map, "style_map", load_map),
        )
        masks = guidance_masks(content, style, content_map, style_map, cfg.resize_maps, what)
    check_method_sizes(cfg, content, [style])
    encoder = engine.encoder(cfg.pooling)
    device = encoder.device
    objective = make_objective(encoder, cfg)
    regions = (None, None) if masks is None else (RegionMasks(masks[0]), RegionMasks(masks[1]))
    sizes = scale_schedule(cfg)

    def scale_fn(index: int, long_side: int, previous: torch.Tensor | None) -> Problem:
        content_s, style_s = set_scale_targets(objective, content, style, long_side, index, cfg, regions)
        last = index == len(sizes) - 1 and len(sizes) > 1
        if previous is None:
            start = initial_image(cfg.init, content_s, style_s)
        else:
            # reference: upsample the previous result and add the content's finest band back, except at the last
            # scale, which starts from the upsampled result alone at half the learning rate
            start = resize(previous.to(device), tuple(content_s.shape[-2:]), mode="bilinear")
            if not last:
                start = start + high_pass(content_s)
        pyramid = LaplacianPyramid(start, cfg.pyramid_levels).to(device)

        def result() -> torch.Tensor:
            with torch.no_grad():
                return pyramid().cpu()  # unclamped, as the reference, so the next scale can keep optimising it

        return Problem(
            list(pyramid.parameters()),
            lambda: objective(pyramid()),
            image=pyramid,
            optimizer=cfg.optimizer,
            lr=cfg.final_lr if last else cfg.lr,
            result=result,
            label=f"strotss {long_side}px",
        )

    return engine.run(sizes, scale_fn).clamp(0, 1)


def stylize(content, style, content_map=None, style_map=None, **options) -> torch.Tensor:
    """Python API: ``stylize(content, style, size=256, steps=100, ...)`` with any key of the config.

    ``content``, ``style`` (and the optional region maps) are paths or ``(1, 3, H, W)`` tensors in [0, 1].
    Returns the result tensor.
    """
    cfg = load(STROTSS, options)
    return transfer(content, style, cfg, content_map=content_map, style_map=style_map)


def solve(cfg, engine: Engine) -> dict[str, torch.Tensor]:
    """The method's entry for :func:`semstyle.api.run`: ``{"output": result}``."""
    return {"output": transfer(cfg.content, cfg.style, cfg, engine, cfg.content_map, cfg.style_map)}
