"""Neural doodle: semantic style transfer with colour-coded maps (Champandard 2016, "Semantic Style Transfer and
Turning Two-Bit Doodles into Fine Artworks"), built on the patch MRF loss of CNNMRF (Li & Wand 2016).

Modes, all from one config:

- **doodle from maps**: ``style.image`` + ``style.map`` + ``target.map``, no content: the target map is painted
  from noise with patches of the style painting, region by region (the "two-bit doodle" case);
- **doodle with content**: add ``content.image`` (its map is ``target.map``): a content loss on ``relu4_2`` keeps
  the photo's structure;
- **automatic maps**: ``semantic.auto_maps: N`` segments the style and content images jointly into N regions
  (k-means), for users without hand-drawn maps;
- **style.loss: gram_masked**: one Gram matrix per region (fast-neural-doodle) instead of patch matching;
- plain CNNMRF (no maps) is the ``cnnmrf`` method, which runs this same code with CNNMRF's defaults.

Optimisation: L-BFGS on the pixels, clamped to [0, 1], in ``phases`` coarse-to-fine scales (neural-doodle
``--phases 3``: 1/4, 1/2, 1 of ``size``). Besides ``output.png`` the run folder gets ``sheet.png`` (style, style map,
target map, [content,] result side by side) and ``palette.png`` (the region colours, in channel order).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from omegaconf import OmegaConf

from .. import semantic
from ..config import check_choice, check_number, load_config
from ..encoder import check_layers, vgg19_encoder
from ..errors import check
from ..image import as_image, resize, target_size
from ..losses import ContentLoss, TVLoss
from ..losses.gram_masked import MaskedGramLoss
from ..losses.mrf import MRFLoss
from ..objective import Objective
from ..optim import OPTIMIZERS, optimize
from ..padded import PaddedEncoder
from ..runs import RunDir
from ..schedule import INITS, coarse_to_fine, frame_saver, init_image

STYLE_LOSSES = ("mrf", "gram_masked")

# Per-loss defaults used when style.layers / style.weight are null.
LOSS_DEFAULTS = {
    # neural-doodle doodle.py: --style-layers 3_1,4_1 (Lasagne convs include the ReLU), --style-weight 25,
    # each layer's loss a mean over patch elements, as mrf_loss is.
    "mrf": {"layers": ["relu3_1", "relu4_1"], "weight": 25.0},
    # fast-neural-doodle uses neural-style's layers relu1_1..relu5_1; the weight keeps this toolkit's Gatys
    # style/content balance (gatys: 1e-6 / 1e-3) relative to content.weight 10 (maps only: it just sets the
    # balance with TV, which stays ~10 % of the loss on the Monet doodle).
    "gram_masked": {"layers": ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"], "weight": 1.0e-2},
}

DEFAULTS = {
    "size": 512,  # neural-doodle samples are 512 px wide
    "steps": 100,  # per phase: neural-doodle --iterations 100
    "phases": 3,  # neural-doodle --phases 3: 1/4, 1/2, 1 of size (ignored when `scales` is set)
    "style": {
        "image": None,
        "map": None,
        "loss": "mrf",  # mrf | gram_masked
        "weight": None,  # null: 25 for mrf (neural-doodle --style-weight), 1e-2 for gram_masked
        "layers": None,  # null: relu3_1, relu4_1 for mrf; relu1_1..relu5_1 for gram_masked
        "layer_weights": None,  # null: 1 per layer (neural-doodle sums its layers)
        "scale": 1.0,  # style long side = phase long side × scale
    },
    "target": {"map": None},  # the doodle to paint (or the content image's map)
    "content": {
        "image": None,  # optional photo whose map is target.map
        # neural-doodle's --content-weight 10 (a mean squared error, as ContentLoss is) lost the photo: abandoning it
        # lowers the MRF and region-colour terms by 3.5-12x the most the content term can cost at 10 (its weight times
        # the photo's mean squared relu4_2), so the optimum is the painting re-arranged. 100, from the photo, keeps
        # faces and objects on 6 portrait and landscape pairs (docs/doodle.md, "Doodle with a content photo")
        "weight": 100.0,
        "layers": ["relu4_2"],  # neural-doodle --content-layers 4_2 (post-ReLU in Lasagne)
    },
    "semantic": {
        "weight": 10.0,  # neural-doodle --semantic-weight 10: score = NCC(features) + 10 · NCC(map)
        "max_colors": 8,  # k-means clusters fitted to a map's colours
        "min_fraction": 0.005,  # clusters under 0.5 % of the pixels are anti-aliasing/JPEG noise
        "unmatched": "error",  # error | ignore: a target colour with no style counterpart
        "auto_maps": 0,  # N > 0: segment style and content into N regions by k-means instead of maps
        "auto_features": "color",  # color (Lab + position) | vgg (relu3_1 features + position)
        "resize_maps": False,  # resize a map whose size differs from its image instead of failing
        # semstyle's addition to neural-doodle (0 = its objective): a masked Gram loss on the RGB pixels in [0, 1]
        # gives each target region the colour statistics of its style region. The patch losses alone left thin or
        # dark regions too light (the Renoir tree: mean colour 0.3-0.4 from the painting's, nearer the grass);
        # at 1e9 the term sets the colours in the first steps and is < 1 % of the loss by the end.
        "color_weight": 1.0e9,
    },
    "mrf": {
        "patch_size": 3,  # both papers: 3x3 patches
        "style_stride": 1,  # neural-doodle: every style patch (CNNMRF: 2)
        "stride": 1,  # neural-doodle: every synthesis patch (CNNMRF: 2)
        "rotations": 0,  # CNNMRF: ±n rotated style copies (its examples use 1)
        "rotation_step": 7.5,  # degrees; CNNMRF target_step_rotation = pi/24
        "scalings": 0,  # CNNMRF: ±n scaled style copies
        "scaling_step": 1.05,  # CNNMRF target_step_scale
        # semstyle's search (neural-doodle: exact, on all channels, every step): an exact search at each phase's
        # start, then one PatchMatch step every second L-BFGS step on 64 principal channels. On the Monet doodle at
        # 512 px the results' exact MRF loss is the exact search's (+0.5 % over 3 seeds, which differ by up to
        # 10 %) in 60 % of the time (docs/doodle.md).
        "match_channels": 64,  # > 0: search on this many principal channels (approximate); 0: all
        "search": "patchmatch",  # exact | patchmatch
        "search_every": 2,  # search on every n-th step, keep the matches in between (both papers: 1)
    },
    # neural-doodle --smoothness 1: mean(((dx² + dy²)·255²)^1.25) on 0-255 pixels. TVLoss(p=2.5) on [0, 1] pixels
    # is mean(|dx|^2.5 + |dy|^2.5); the two agree within 2^0.25 (equal for dx = dy) at weight 255^2.5 · 2^0.25.
    "tv_weight": 1.24e6,
    "tv_power": 2.5,
    # auto: content with content.image (CNNMRF ini_method 'image'), else noise (neural-doodle --seed noise, uniform in
    # --seed-range 16:240); "regions": see region_colors
    "init": "auto",
    "optimizer": "lbfgs",
    "lr": None,
    "pooling": "avg",  # neural-doodle builds VGG-19 with average pooling
}


def validate(cfg) -> None:
    check_choice(cfg, "style.loss", STYLE_LOSSES)
    check_number(cfg, "phases", lo=1, hi=8, integer=True)
    check_number(cfg, "style.scale", lo=0, lo_open=True)
    if cfg.style.weight is not None:
        check_number(cfg, "style.weight", lo=0)
    if cfg.style.layers is not None:
        check(len(cfg.style.layers) > 0, "style.layers: must name at least one layer")
        check_layers(cfg.style.layers)
    check_number(cfg, "content.weight", lo=0)
    check_layers(cfg.content.layers)
    check_number(cfg, "semantic.weight", lo=0)
    check_number(cfg, "semantic.color_weight", lo=0)
    check_number(cfg, "semantic.max_colors", lo=1, hi=64, integer=True)
    check_number(cfg, "semantic.min_fraction", lo=0, hi=0.5)
    check_choice(cfg, "semantic.unmatched", ("error", "ignore"))
    check_number(cfg, "semantic.auto_maps", lo=0, hi=16, integer=True)
    check(cfg.semantic.auto_maps != 1, "semantic.auto_maps: one region is no segmentation; use 0 (off) or >= 2")
    check_choice(cfg, "semantic.auto_features", ("color", "vgg"))
    check_number(cfg, "mrf.patch_size", lo=1, hi=7, integer=True)
    check(cfg.mrf.patch_size % 2 == 1, f"mrf.patch_size: must be odd, got {cfg.mrf.patch_size}")
    check_number(cfg, "mrf.style_stride", lo=1, hi=4, integer=True)
    check_number(cfg, "mrf.stride", lo=1, hi=4, integer=True)
    check_number(cfg, "mrf.rotations", lo=0, hi=4, integer=True)
    check_number(cfg, "mrf.scalings", lo=0, hi=4, integer=True)
    check_number(cfg, "mrf.rotation_step", lo=0, hi=90)
    check_number(cfg, "mrf.scaling_step", lo=1, hi=2, lo_open=True)
    check_number(cfg, "mrf.match_channels", lo=0, hi=512, integer=True)
    check_choice(cfg, "mrf.search", ("exact", "patchmatch"))
    check_number(cfg, "mrf.search_every", lo=1, hi=100, integer=True)
    check_number(cfg, "tv_weight", lo=0)
    check_number(cfg, "tv_power", lo=1, hi=4)
    check_choice(cfg, "optimizer", OPTIMIZERS)
    check_choice(cfg, "pooling", ("max", "avg"))
    if cfg.lr is not None:
        check_number(cfg, "lr", lo=0, lo_open=True)
    check(cfg.init in INITS + ("regions",) or isinstance(cfg.init, str),
          f"init: {cfg.init!r} is not noise, regions, content, style or a file")
    check(cfg.style.image is not None, "style.image: required (the painting whose patches are used)")
    auto = cfg.semantic.auto_maps > 0
    if auto:
        check(cfg.content.image is not None,
              "semantic.auto_maps: needs content.image (the target's regions are found in it)")
        check(cfg.style.map is None and cfg.target.map is None,
              "semantic.auto_maps: computes both maps; remove style.map / target.map, or set semantic.auto_maps=0")
    elif cfg.style.loss == "gram_masked" or cfg.target.map is not None or cfg.style.map is not None:
        check(cfg.style.map is not None, "style.map: required with target.map or style.loss=gram_masked "
                                         "(or use semantic.auto_maps=N)")
        check(cfg.target.map is not None, "target.map: required (the doodle to paint, same colours as style.map)")
    else:
        check(cfg.content.image is not None,
              "content.image: required when there are no maps (give target.map to paint a doodle)")
    if cfg.init == "content":
        check(cfg.content.image is not None, "init: content needs content.image")
    if cfg.init == "regions":
        check(auto or cfg.target.map is not None,
              "init: regions needs maps (style.map + target.map, or semantic.auto_maps)")


def loss_defaults(cfg) -> tuple[list[str], float]:
    """Style layers and weight, with nulls resolved per ``style.loss``."""
    d = LOSS_DEFAULTS[cfg.style.loss]
    layers = list(cfg.style.layers) if cfg.style.layers is not None else d["layers"]
    weight = float(cfg.style.weight) if cfg.style.weight is not None else d["weight"]
    return layers, weight


@dataclass
class Inputs:
    """Everything a doodle run paints from, at original resolution."""

    style: torch.Tensor  # (1, 3, Hs, Ws)
    style_masks: torch.Tensor | None  # (1, K, Hs, Ws), None when unguided
    target_masks: torch.Tensor | None  # (1, K, Ht, Wt)
    content: torch.Tensor | None  # (1, 3, Ht, Wt)
    palette: torch.Tensor | None  # (K, 3) colours of the regions, channel order
    shape: tuple[int, int]  # (Ht, Wt): aspect of the output


def _name(what: str, source) -> str:
    return what if isinstance(source, torch.Tensor) else f"{what} {source}"


def prepare(cfg, style=None, style_map=None, target_map=None, content=None) -> Inputs:
    """Load images and maps (paths from ``cfg`` unless given as paths/tensors) and turn maps into masks."""
    sem = cfg.semantic
    style = as_image(style if style is not None else cfg.style.image, "style image")
    content_src = content if content is not None else cfg.content.image
    content = as_image(content_src, "content image") if content_src is not None else None
    style_map = style_map if style_map is not None else cfg.style.map
    target_map = target_map if target_map is not None else cfg.target.map
    if sem.auto_maps > 0:
        check(content is not None, "semantic.auto_maps: needs a content image")
        encoder = vgg19_encoder("max", cfg.precision, cfg.device) if sem.auto_features == "vgg" else None
        style_masks, target_masks = semantic.auto_maps([style, content], int(sem.auto_maps), sem.auto_features,
                                                       encoder=encoder, seed=int(cfg.seed))
        palette = semantic.AUTO_COLORS[torch.arange(sem.auto_maps) % len(semantic.AUTO_COLORS)]
        return Inputs(style, style_masks, target_masks, content, palette, tuple(content.shape[-2:]))
    if style_map is None:  # unguided (CNNMRF)
        check(content is not None, "content.image: required when there are no maps")
        return Inputs(style, None, None, content, None, tuple(content.shape[-2:]))
    check(target_map is not None, "target.map: required with style.map")
    smap = as_image(style_map, "style map", semantic.load_map)
    tmap = as_image(target_map, "target map", semantic.load_map)
    smap = semantic.check_map_size(smap, style, _name("style map", style_map),
                                   "the style image", sem.resize_maps, "semantic.resize_maps=true (--resize-maps)")
    if content is not None:
        tmap = semantic.check_map_size(tmap, content, _name("target map", target_map),
                                       "the content image", sem.resize_maps, "semantic.resize_maps=true (--resize-maps)")
    style_masks, target_masks, palette = semantic.semantic_masks(
        smap, tmap, int(sem.max_colors), float(sem.min_fraction), sem.unmatched)
    return Inputs(style, style_masks, target_masks, content, palette, tuple(tmap.shape[-2:]))


def phase_sizes(cfg) -> list[int]:
    """Long sides of the coarse-to-fine phases: ``scales`` + ``size`` when set, else ``size / 2^(phases-1-i)``."""
    if len(cfg.scales):
        return sorted({int(s) for s in cfg.scales if s < cfg.size}) + [int(cfg.size)]
    sizes = [max(32, round(cfg.size / 2 ** (cfg.phases - 1 - i))) for i in range(cfg.phases)]
    return sorted(set(sizes))


def style_copies(style: torch.Tensor, masks: torch.Tensor | None, mrf) -> list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]]:
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


def region_colors(style: torch.Tensor, style_masks: torch.Tensor, target_masks: torch.Tensor, seed: int,
                  noise: float = 0.25) -> torch.Tensor:
    """A starting image ``(1, 3, h, w)`` for the target masks ``(1, K, h, w)``: each region filled with the mean
    colour of the same style region, plus uniform noise of amplitude ``noise`` (the patches need texture to match).

    From neural-doodle's grey noise, L-BFGS spends most of a short run finding each region's overall colour, and
    dark or thin regions stay too light; seeding the colours lets the run go to texture at once."""
    fill = semantic.masks_to_map(target_masks, semantic.region_means(style, style_masks))
    gen = torch.Generator().manual_seed(seed)
    return (fill + noise * (torch.rand(fill.shape, generator=gen) - 0.5)).clamp(0, 1)


def doodle_objective(cfg, encoder, guided: bool, has_content: bool) -> tuple[Objective, dict[str, nn.Module]]:
    """The doodle objective for a resolved config: content, style (``mrf`` or ``gram_masked``), region colour and TV
    terms. Returns it with every term by name, weightless ones included (their targets are set all the same)."""
    style_layers, style_weight = loss_defaults(cfg)
    if cfg.style.loss == "mrf":
        style_term = MRFLoss(
            style_layers, cfg.style.layer_weights, cfg.mrf.patch_size, cfg.mrf.style_stride, cfg.mrf.stride,
            semantic_weight=cfg.semantic.weight if guided else 0.0,
            match_dtype=torch.bfloat16 if encoder.precision == "bf16" else torch.float32,
            match_channels=cfg.mrf.match_channels, search=cfg.mrf.search, search_every=cfg.mrf.search_every,
            seed=cfg.seed,
        )
    else:
        check(guided, "style.loss=gram_masked needs maps (style.map + target.map, or semantic.auto_maps)")
        style_term = MaskedGramLoss(style_layers, cfg.style.layer_weights)
    terms = {
        "content": ContentLoss(cfg.content.layers),
        "style": style_term,
        # each region's colour statistics: the masked Gram loss on the pixels themselves (no encoder layer)
        "color": MaskedGramLoss(["image"]),
        "tv": TVLoss(cfg.tv_power),
    }
    weights = {
        "content": cfg.content.weight if has_content else 0.0,
        "style": style_weight,
        "color": cfg.semantic.color_weight if guided else 0.0,
        "tv": cfg.tv_weight,
    }
    return Objective(encoder, {name: (term, weights[name]) for name, term in terms.items()}), terms


@torch.no_grad()
def set_targets(objective: Objective, terms: dict[str, nn.Module], cfg, style: torch.Tensor,
                style_masks: torch.Tensor | None, target_masks: torch.Tensor | None,
                content: torch.Tensor | None) -> None:
    """Give the terms of :func:`doodle_objective` one phase's targets: the style ``(1, 3, h, w)`` (with CNNMRF's
    rotated/scaled copies) and its masks, the target masks and the content, all at that phase's size."""
    device = objective.encoder.device
    style_layers = terms["style"].layers
    if content is not None:
        terms["content"].set_target(objective.features(content.to(device), terms["content"].layers))
    if cfg.style.loss == "mrf":
        copies = style_copies(style, style_masks, cfg.mrf)
        feats = [objective.features(img.to(device), style_layers) for img, _, _ in copies]
        terms["style"].set_style(feats, [m for _, m, _ in copies] if style_masks is not None else None,
                                 [v if v is not None else torch.ones_like(img[:, :1]) for img, _, v in copies])
    else:
        terms["style"].set_style(objective.features(style.to(device), style_layers), style_masks)
    if target_masks is not None:
        terms["style"].set_target_masks(target_masks.to(device))
        terms["color"].set_style({"image": style.to(device)}, style_masks)
        terms["color"].set_target_masks(target_masks.to(device))


def paint(inputs: Inputs, cfg, run: RunDir | None = None) -> torch.Tensor:
    """Optimise the output image for a resolved config; returns ``(1, 3, H, W)`` in [0, 1]."""
    # mirror-padded: zero padding tinted a 1-2 px border of every result (semstyle/padded.py)
    encoder = PaddedEncoder(vgg19_encoder(cfg.pooling, cfg.precision, cfg.device))
    guided = inputs.style_masks is not None
    has_content = inputs.content is not None
    init = ("content" if has_content else "noise") if cfg.init == "auto" else cfg.init
    objective, terms = doodle_objective(cfg, encoder, guided, has_content)
    log = run.log if run is not None else None
    torch.manual_seed(cfg.seed)
    device = encoder.device

    def scale_fn(index: int, long_side: int, previous: torch.Tensor | None) -> torch.Tensor:
        shape = target_size(*inputs.shape, long_side)
        style_s = resize(inputs.style, max(16, round(long_side * cfg.style.scale)))
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
        optimize(
            [image], lambda: objective(image), cfg.steps, cfg.optimizer, cfg.lr,
            project=lambda: image.clamp_(0, 1), log=log, scale=index,
            on_step=frame_saver(run, cfg.save_every, index, image),
            desc=f"doodle {shape[1]}x{shape[0]}", progress=cfg.progress,
        )
        return image.detach().cpu()

    return coarse_to_fine(phase_sizes(cfg), scale_fn, run)


def contact_sheet(panels: list[torch.Tensor], height: int = 256, gap: int = 6) -> torch.Tensor:
    """Images ``(1, 3, H, W)`` resized to ``height`` and laid side by side on white: ``(1, 3, height, ΣW + gaps)``."""
    resized = [resize(p.float().clamp(0, 1), (height, max(1, round(p.shape[-1] * height / p.shape[-2])))) for p in panels]
    white = torch.ones(1, 3, height, gap)
    row = [x for p in resized for x in (p, white)][:-1]
    return torch.cat(row, dim=3)


def save_extras(inputs: Inputs, output: torch.Tensor, run: RunDir) -> None:
    """``sheet.png`` (style, style map, target map, [content,] result) and ``palette.png``."""
    panels = [inputs.style]
    if inputs.style_masks is not None:
        panels += [semantic.masks_to_map(inputs.style_masks, inputs.palette),
                   semantic.masks_to_map(inputs.target_masks, inputs.palette)]
    if inputs.content is not None:
        panels.append(inputs.content)
    panels.append(output)
    run.save_image("sheet.png", contact_sheet(panels, height=min(256, output.shape[-2])))
    if inputs.palette is not None:
        run.save_image("palette.png", semantic.palette_strip(inputs.palette))


def doodle(style, style_map=None, target_map=None, content=None, **options) -> torch.Tensor:
    """Python API: paint ``target_map`` with ``style`` (whose map is ``style_map``); optional ``content`` photo.

    Images and maps are paths or ``(1, 3, H, W)`` tensors in [0, 1]; ``options`` are config keys, nested ones
    dotted (``doodle(s, sm, tm, size=256, **{"semantic.weight": 0})``). Returns the result tensor.
    """
    user = OmegaConf.create({"method": "doodle"})
    for key, value in options.items():
        OmegaConf.update(user, key, value, force_add=True)
    for key, value in (("style.image", style), ("style.map", style_map), ("target.map", target_map),
                       ("content.image", content)):
        if value is not None:  # tensors are passed on directly; validation only needs to know they exist
            OmegaConf.update(user, key, "<tensor>" if isinstance(value, torch.Tensor) else str(value), force_add=True)
    cfg = load_config(user)
    return paint(prepare(cfg, style, style_map, target_map, content), cfg)


def run(cfg, run_dir: RunDir) -> torch.Tensor:
    inputs = prepare(cfg)
    output = paint(inputs, cfg, run_dir)
    run_dir.save_image("output.png", output)
    save_extras(inputs, output, run_dir)
    return output
