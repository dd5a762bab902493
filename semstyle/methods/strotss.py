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

from ..checks import check_sizes
from ..config import check_choice, check_number, load_config, scale_schedule
from ..encoder import vgg19_encoder
from ..errors import check
from ..image import as_image, load_image, resize
from ..hypercolumn import STROTSS_LAYERS
from ..losses.strotss import StrotssLoss
from ..optim import OPTIMIZERS, optimize
from ..pyramid import LaplacianPyramid, high_pass
from ..runs import RunDir
from ..schedule import coarse_to_fine

INITS = ("style_mean", "content")

DEFAULTS = {
    "content": "assets/content/tubingen.jpg",
    "style": "assets/styles/starry_night.jpg",
    "content_map": None,  # colour-coded region map of the content (same size); needs style_map
    "style_map": None,  # region map of the style; same colours name the same regions
    "resize_maps": False,  # resize a map whose size differs from its image's instead of failing
    "size": 512,  # reference: max_scl 5 -> long sides 64, 128, 256, 512
    "scales": [64, 128, 256],
    "steps": 250,  # per scale; reference st_helper.py MAX_ITER = 250 (futscdav/strotss: 200)
    "content_weight": 16.0,  # α at the first scale: reference CLI weight 1.0 × 16 (paper Sec. 2.5); halved per scale
    "moment_weight": 1.0,  # reference objective: moment_weight=1.0
    "samples": 1024,  # output locations per region and step (reference get_feature_inds: 32**2)
    "style_samples": 5000,  # style locations per region and scale (reference: 5 × 1000)
    "optimizer": "rmsprop",  # reference: optim.RMSprop over the pyramid levels
    "lr": 2.0e-3,  # reference styleTransfer.py: lr = 2e-3 ...
    "final_lr": 1.0e-3,  # ... and 1e-3 at the last scale of a multi-scale run
    "pyramid_levels": 5,  # reference: dec_lap_pyr(stylized_im, 5)
    "init": "style_mean",  # style_mean (reference: style's mean colour + content's finest band) | content | <file>
    "style_scale": 1.0,  # style long side = scale long side × style_scale (reference: same long side)
    "pooling": "max",  # the reference's VGG-16 as trained
}


def validate(cfg) -> None:
    for key in ("content_weight", "moment_weight"):
        check_number(cfg, key, lo=0)
    for key in ("lr", "final_lr", "style_scale"):
        check_number(cfg, key, lo=0, lo_open=True)
    check_number(cfg, "samples", lo=2, hi=16384, integer=True)
    check_number(cfg, "style_samples", lo=1, hi=100000, integer=True)
    check_number(cfg, "pyramid_levels", lo=0, hi=10, integer=True)
    check_choice(cfg, "optimizer", [o for o in OPTIMIZERS if o != "lbfgs"])  # the loss is stochastic: no line search
    check_choice(cfg, "pooling", ("max", "avg"))
    check(isinstance(cfg.init, str), f"init: {cfg.init!r} is not style_mean, content or an image file")
    check((cfg.content_map is None) == (cfg.style_map is None),
          "content_map and style_map: spatial guidance needs both maps (or neither)")


def guidance_masks(content: torch.Tensor, style: torch.Tensor, content_map: torch.Tensor,
                   style_map: torch.Tensor, resize_maps: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Region masks ``(1, K, H, W)`` of the content and ``(1, K, Hs, Ws)`` of the style, channel k the same region.

    Maps must have their image's size; their major colours are found by k-means and paired by nearest colour
    (:func:`semstyle.semantic.semantic_masks`), which tolerates JPEG noise in the maps.
    """
    from ..semantic import check_map_size, semantic_masks

    content_map = check_map_size(content_map, content, "content_map", "the content image", resize_maps, "resize_maps=true")
    style_map = check_map_size(style_map, style, "style_map", "the style image", resize_maps, "resize_maps=true")
    style_masks, content_masks, _ = semantic_masks(style_map, content_map)
    return content_masks, style_masks


def initial_image(init: str, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """The first scale's start: ``style_mean`` (the style's mean colour plus the content's finest pyramid band,
    reference ``styleTransfer.py``), ``content``, or an image file, at ``content``'s size."""
    if init == "style_mean":
        return style.mean(dim=(2, 3), keepdim=True) + high_pass(content)
    if init == "content":
        return content.clone()
    return load_image(init, tuple(content.shape[-2:]), what="init image").to(content.device)


def transfer(content, style, cfg, run: RunDir | None = None, content_map=None, style_map=None) -> torch.Tensor:
    """Run STROTSS with a resolved config; returns the result ``(1, 3, H, W)`` in [0, 1].

    Images and maps are paths or ``(1, 3, H, W)`` tensors in [0, 1]; ``content_map``/``style_map``, colour-coded
    region maps of the two images, enable guidance.
    """
    from ..semantic import load_map

    content, style = as_image(content, "content image"), as_image(style, "style image")
    masks = None
    if content_map is not None or style_map is not None:
        check(content_map is not None and style_map is not None, "spatial guidance needs both content_map and style_map")
        content_map, style_map = as_image(content_map, "content_map", load_map), as_image(style_map, "style_map", load_map)
        masks = guidance_masks(content, style, content_map, style_map, cfg.resize_maps)
    check_sizes({"content image": content}, scale_schedule(cfg), STROTSS_LAYERS)
    check_sizes({"style image": style}, scale_schedule(cfg), STROTSS_LAYERS, scale=cfg.style_scale, floor=16)
    encoder = vgg19_encoder(cfg.pooling, cfg.precision, cfg.device)
    device = encoder.device
    loss = StrotssLoss(encoder, content_weight=cfg.content_weight, moment_weight=cfg.moment_weight,
                       samples=cfg.samples, style_samples=cfg.style_samples, seed=cfg.seed)
    sizes = scale_schedule(cfg)
    log = run.log if run is not None else None
    torch.manual_seed(cfg.seed)

    def scale_fn(index: int, long_side: int, previous: torch.Tensor | None) -> torch.Tensor:
        from ..semantic import masks_at

        content_s = resize(content, long_side).to(device)
        style_s = resize(style, max(16, round(long_side * cfg.style_scale))).to(device)
        content_masks = style_masks = None
        if masks is not None:
            content_masks = masks_at(masks[0], tuple(content_s.shape[-2:]))
            style_masks = masks_at(masks[1], tuple(style_s.shape[-2:]))
        loss.content_weight = cfg.content_weight / 2 ** index  # reference: content_weight /= 2 per scale
        loss.set_targets(content_s, style_s, content_masks, style_masks)
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

        def on_step(step: int) -> None:
            if run is not None and cfg.save_every > 0 and (step + 1) % cfg.save_every == 0:
                with torch.no_grad():
                    run.save_image(f"frames/s{index}_{step + 1:05d}.png", pyramid())

        optimize(
            pyramid.parameters(), lambda: loss(pyramid()), cfg.steps, cfg.optimizer,
            cfg.final_lr if last else cfg.lr, log=log, scale=index, on_step=on_step,
            desc=f"strotss {long_side}px", progress=cfg.progress,
        )
        with torch.no_grad():
            return pyramid().cpu()  # unclamped, as the reference, so the next scale can keep optimising it

    return coarse_to_fine(sizes, scale_fn, run).clamp(0, 1)


def stylize(content, style, content_map=None, style_map=None, **options) -> torch.Tensor:
    """Python API: ``stylize(content, style, size=256, steps=100, ...)`` with any key of the config.

    ``content``, ``style`` (and the optional region maps) are paths or ``(1, 3, H, W)`` tensors in [0, 1].
    Returns the result tensor.
    """
    cfg = load_config({"method": "strotss", **options})
    return transfer(content, style, cfg, content_map=content_map, style_map=style_map)


def run(cfg, run_dir: RunDir) -> torch.Tensor:
    output = transfer(cfg.content, cfg.style, cfg, run_dir, cfg.content_map, cfg.style_map)
    run_dir.save_image("output.png", output)
    return output
