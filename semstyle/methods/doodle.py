"""Neural doodle: semantic style transfer with colour-coded maps (Champandard 2016, "Semantic Style Transfer and
Turning Two-Bit Doodles into Fine Artworks"), built on the patch MRF loss of CNNMRF (Li & Wand 2016).

Modes, all from one config:

- **doodle from maps**: ``style`` + ``style_map`` + ``content_map``, no content: the target map is painted
  from noise with patches of the style painting, region by region (the "two-bit doodle" case);
- **doodle with content**: add a ``content`` photo (its map is ``content_map``): a content loss on ``relu4_2`` keeps
  the photo's structure;
- **automatic maps**: ``semantic.auto_maps: N`` segments the style and content images jointly into N regions
  (k-means), for users without hand-drawn maps;
- **style_loss: gram_masked**: one Gram matrix per region (fast-neural-doodle) instead of patch matching;
- plain CNNMRF (no maps) is the ``cnnmrf`` method, which runs this same code with CNNMRF's defaults.

Optimisation: L-BFGS on the pixels, clamped to [0, 1], in ``phases`` coarse-to-fine scales (neural-doodle
``--phases 3``: 1/4, 1/2, 1 of ``size``). Besides ``output.png`` the run folder gets ``sheet.png`` (style, style map,
target map, [content,] result side by side) and ``palette.png`` (the region colours, in channel order).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from ..conf import load, scale_schedule
from ..conf.doodle import CNNMRF, DOODLE
from ..conf.sizes import check_method_sizes, target_size
from ..core import semantic
from ..core.encoder import vgg19_encoder
from ..core.image import as_image, resize, source_name
from ..core.padded import PaddedEncoder
from ..engine import Engine, Objective, Problem, pixel_problem
from ..engine.runs import RunDir
from ..engine.start import init_image
from ..errors import check
from ..losses import ContentLoss, TVLoss
from ..losses.base import Loss
from ..losses.gram_masked import MaskedGramLoss
from ..losses.mrf import MRFLoss
from ..viz.layout import side_by_side


@dataclass
class Inputs:
    """Everything a doodle run paints from, at original resolution."""

    style: torch.Tensor  # (1, 3, Hs, Ws)
    style_masks: torch.Tensor | None  # (1, K, Hs, Ws), None when unguided
    target_masks: torch.Tensor | None  # (1, K, Ht, Wt)
    content: torch.Tensor | None  # (1, 3, Ht, Wt)
    palette: torch.Tensor | None  # (K, 3) colours of the regions, channel order
    shape: tuple[int, int]  # (Ht, Wt): aspect of the output


def prepare(cfg, style=None, style_map=None, target_map=None, content=None) -> Inputs:
    """Load images and maps (paths from ``cfg`` unless given as paths/tensors) and turn maps into masks."""
    sem = cfg.semantic
    style = as_image(style if style is not None else cfg.style, "style image")
    content_src = content if content is not None else cfg.content
    content = as_image(content_src, "content image") if content_src is not None else None
    style_map = style_map if style_map is not None else cfg.style_map
    target_map = target_map if target_map is not None else cfg.content_map
    if sem.auto_maps > 0:
        check(content is not None, "semantic.auto_maps: needs a content image")
        encoder = vgg19_encoder("max", cfg.precision, cfg.device, conv=cfg.conv) if sem.auto_features == "vgg" else None
        style_masks, target_masks = semantic.auto_maps(
            [style, content], int(sem.auto_maps), sem.auto_features, encoder=encoder, seed=int(cfg.seed)
        )
        palette = semantic.AUTO_COLORS[torch.arange(sem.auto_maps) % len(semantic.AUTO_COLORS)]
        return Inputs(style, style_masks, target_masks, content, palette, tuple(content.shape[-2:]))
    if style_map is None:  # unguided (CNNMRF)
        check(content is not None, "content: required when there are no maps")
        return Inputs(style, None, None, content, None, tuple(content.shape[-2:]))
    check(target_map is not None, "content_map: required with style_map")
    smap = as_image(style_map, "style map", semantic.load_map)
    tmap = as_image(target_map, "target map", semantic.load_map)
    target_name = source_name("target map", target_map)
    smap = semantic.check_map_size(
        smap,
        style,
        source_name("style map", style_map),
        "the style image",
        cfg.resize_maps,
        "resize_maps=true (--resize-maps)",
    )
    if content is not None:
        tmap = semantic.check_map_size(
            tmap,
            content,
            target_name,
            "the content image",
            cfg.resize_maps,
            "resize_maps=true (--resize-maps)",
        )
    style_masks, target_masks, palette = semantic.semantic_masks(
        smap,
        tmap,
        int(sem.max_colors),
        float(sem.min_fraction),
        sem.unmatched,
        what=target_name,
    )
    return Inputs(style, style_masks, target_masks, content, palette, tuple(tmap.shape[-2:]))


def style_copies(
    style: torch.Tensor, masks: torch.Tensor | None, mrf
) -> list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]]:
    """CNNMRF's augmented style: ``(image, masks, valid)`` for every rotation × scaling (the original first).

    Rotated copies have empty corners, marked 0 in ``valid`` so no patch is taken there.
    """
    import kornia

    copies = []
    for r in range(-mrf.rotations, mrf.rotations + 1):
        for s in range(-mrf.scalings, mrf.scalings + 1):
            angle, zoom = r * float(mrf.rotation_step), float(mrf.scaling_step) ** s
            if r == 0 and s == 0:
                copies.insert(0, (style, masks, None))
                continue
            h, w = style.shape[-2:]
            size = (max(8, round(h * zoom)), max(8, round(w * zoom)))
            stack = torch.cat([style, torch.ones_like(style[:, :1])] + ([masks] if masks is not None else []), 1)
            stack = F.interpolate(stack, size=size, mode="bilinear", align_corners=False, antialias=zoom < 1)
            stack = kornia.geometry.transform.rotate(stack, torch.tensor([angle]), mode="bilinear")
            copies.append((stack[:, :3].clamp(0, 1), stack[:, 4:] if masks is not None else None, stack[:, 3:4]))
    return copies


def region_colors(
    style: torch.Tensor, style_masks: torch.Tensor, target_masks: torch.Tensor, seed: int, noise: float = 0.25
) -> torch.Tensor:
    """A starting image ``(1, 3, h, w)`` for the target masks ``(1, K, h, w)``: each region filled with the mean
    colour of the same style region, plus uniform noise of amplitude ``noise`` (the patches need texture to match).

    From neural-doodle's grey noise, L-BFGS spends most of a short run finding each region's overall colour, and
    dark or thin regions stay too light; seeding the colours lets the run go to texture at once."""
    fill = semantic.masks_to_map(target_masks, semantic.region_means(style, style_masks))
    gen = torch.Generator().manual_seed(seed)
    return (fill + noise * (torch.rand(fill.shape, generator=gen).to(fill.device) - 0.5)).clamp(0, 1)


def doodle_objective(cfg, encoder, guided: bool, has_content: bool) -> tuple[Objective, dict[str, Loss]]:
    """The doodle objective for a resolved config: content, style (``mrf`` or ``gram_masked``), region colour and TV
    terms. Returns it with every term by name, weightless ones included (their targets are set all the same)."""
    style_layers, style_weight = list(cfg.style_layers), float(cfg.style_weight)
    if cfg.style_loss == "mrf":
        style_term = MRFLoss(
            style_layers,
            cfg.style_layer_weights,
            cfg.mrf.patch_size,
            cfg.mrf.style_stride,
            cfg.mrf.stride,
            semantic_weight=cfg.semantic.weight if guided else 0.0,
            match_dtype=torch.bfloat16 if encoder.precision == "bf16" else torch.float32,
            match_channels=cfg.mrf.match_channels,
            search=cfg.mrf.search,
            search_every=cfg.mrf.search_every,
            seed=cfg.seed,
        )
    else:
        check(guided, "style_loss=gram_masked needs maps (style_map + content_map, or semantic.auto_maps)")
        style_term = MaskedGramLoss(style_layers, cfg.style_layer_weights)
    terms = {
        "content": ContentLoss(cfg.content_layers),
        "style": style_term,
        # each region's colour statistics: the masked Gram loss on the pixels themselves (no encoder layer)
        "color": MaskedGramLoss(["image"]),
        "tv": TVLoss(cfg.tv_power),
    }
    weights = {
        "content": cfg.content_weight if has_content else 0.0,
        "style": style_weight,
        "color": cfg.semantic.color_weight if guided else 0.0,
        "tv": cfg.tv_weight,
    }
    return Objective(encoder, {name: (term, weights[name]) for name, term in terms.items()}), terms


@torch.no_grad()
def set_targets(
    objective: Objective,
    terms: dict[str, Loss],
    cfg,
    style: torch.Tensor,
    style_masks: torch.Tensor | None,
    target_masks: torch.Tensor | None,
    content: torch.Tensor | None,
) -> None:
    """Give the terms of :func:`doodle_objective` one phase's targets: the style ``(1, 3, h, w)`` (with CNNMRF's
    rotated/scaled copies) and its masks, the target masks and the content, all at that phase's size."""
    device = objective.encoder.device
    style_layers = terms["style"].layers
    # one RegionMasks per image: the terms that read it share its copies pooled to each layer
    style_regions = semantic.RegionMasks.of(style_masks)
    if content is not None:
        terms["content"].set_target(objective.features(content.to(device), terms["content"].layers))
    if cfg.style_loss == "mrf":
        copies = style_copies(style, style_masks, cfg.mrf)
        feats = [objective.features(img.to(device), style_layers) for img, _, _ in copies]
        terms["style"].set_target(
            feats,
            [m for _, m, _ in copies] if style_masks is not None else None,
            [v if v is not None else torch.ones_like(img[:, :1]) for img, _, v in copies],
        )
    else:
        terms["style"].set_target(objective.features(style.to(device), style_layers), style_regions)
    if target_masks is not None:
        target_regions = semantic.RegionMasks(target_masks.to(device))
        terms["style"].set_input_masks(target_regions)
        terms["color"].set_target({"image": style.to(device)}, style_regions)
        terms["color"].set_input_masks(target_regions)


def paint(inputs: Inputs, cfg, engine: Engine | None = None) -> torch.Tensor:
    """Optimise the output image for a resolved config; returns ``(1, 3, H, W)`` in [0, 1]."""
    engine = engine or Engine(cfg)
    # mirror-padded: zero padding tinted a 1-2 px border of every result (semstyle/core/padded.py)
    encoder = PaddedEncoder(engine.encoder(cfg.pooling))
    guided = inputs.style_masks is not None
    has_content = inputs.content is not None
    init = ("content" if has_content else "noise") if cfg.init == "auto" else cfg.init
    objective, terms = doodle_objective(cfg, encoder, guided, has_content)
    check_method_sizes(cfg, inputs.shape, [inputs.style], ["target map" if guided else "content image", "style image"])
    sizes = scale_schedule(cfg)
    device = encoder.device

    def scale_fn(index: int, long_side: int, previous: torch.Tensor | None) -> Problem:
        shape = target_size(*inputs.shape, long_side)
        style_s = resize(inputs.style, max(16, round(long_side * cfg.style_scale)))
        style_masks = semantic.masks_at(inputs.style_masks, style_s.shape[-2:]) if guided else None
        content_s = resize(inputs.content, shape).to(device) if has_content else None
        target_masks = semantic.masks_at(inputs.target_masks, shape) if guided else None
        set_targets(objective, terms, cfg, style_s, style_masks, target_masks, content_s)
        if previous is None and init == "regions":
            start = region_colors(style_s, style_masks, target_masks, cfg.seed)
        elif previous is None:
            start = init_image(init, content_s, style_s, shape, cfg.seed)
            if init == "noise":  # neural-doodle --seed-range 16:240
                start = (16 + start * 224) / 255
        else:
            start = resize(previous, shape)
        image = start.to(device).requires_grad_(True)
        return pixel_problem(image, lambda: objective(image), cfg.optimizer, cfg.lr, f"doodle {shape[1]}x{shape[0]}")

    return engine.run(sizes, scale_fn)


def save_extras(inputs: Inputs, output: torch.Tensor, run: RunDir) -> None:
    """``sheet.png`` (style, style map, target map, [content,] result) and ``palette.png``."""
    panels = [inputs.style]
    if inputs.style_masks is not None:
        panels += [
            semantic.masks_to_map(inputs.style_masks, inputs.palette),
            semantic.masks_to_map(inputs.target_masks, inputs.palette),
        ]
    if inputs.content is not None:
        panels.append(inputs.content)
    panels.append(output)
    run.save_image("sheet.png", side_by_side(panels, height=min(256, output.shape[-2])))
    if inputs.palette is not None:
        run.save_image("palette.png", semantic.palette_strip(inputs.palette))


def _config(schema, options: dict, images: dict):
    """A resolved config from keyword options (nested keys dotted) and images given as paths or tensors."""
    user = OmegaConf.create({})
    for key, value in options.items():
        OmegaConf.update(user, key, value, force_add=True)
    for key, value in images.items():
        if value is not None:  # tensors are passed on directly; validation only needs to know they exist
            OmegaConf.update(user, key, "<tensor>" if isinstance(value, torch.Tensor) else str(value), force_add=True)
    return load(schema, user)


def doodle(style, style_map=None, target_map=None, content=None, **options) -> torch.Tensor:
    """Python API: paint ``target_map`` with ``style`` (whose map is ``style_map``); optional ``content`` photo.

    Images and maps are paths or ``(1, 3, H, W)`` tensors in [0, 1]; ``options`` are config keys, nested ones
    dotted (``doodle(s, sm, tm, size=256, **{"semantic.weight": 0})``). Returns the result tensor.
    """
    cfg = _config(
        DOODLE,
        options,
        {"style": style, "style_map": style_map, "content_map": target_map, "content": content},
    )
    return paint(prepare(cfg, style, style_map, target_map, content), cfg)


def cnnmrf(content, style, **options) -> torch.Tensor:
    """Python API of CNNMRF (Li & Wand 2016), the ``cnnmrf`` preset: ``cnnmrf(content, style, size=256, ...)``."""
    cfg = _config(CNNMRF, options, {"content": content, "style": style})
    return paint(prepare(cfg, style=style, content=content), cfg)


def solve(cfg, engine: Engine) -> dict:
    """The method's entry for :func:`semstyle.api.run` (``doodle`` and ``cnnmrf``)."""
    inputs = prepare(cfg)
    return {"output": paint(inputs, cfg, engine), "inputs": inputs}


def save(result: dict, cfg, run_dir: RunDir) -> None:
    save_extras(result["inputs"], result["output"], run_dir)
