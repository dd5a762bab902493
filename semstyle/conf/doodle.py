"""Config of the ``doodle`` method (neural doodle, Champandard 2016, on the patch MRF of CNNMRF) and of its
preset ``cnnmrf`` (Li & Wand 2016, the defaults of CNNMRF's ``run_trans.lua``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from ..errors import check
from .checks import check_choice, check_number
from .common import RunConfig, packaged
from .gatys import check_optimizer
from .loader import Schema
from .vocab import POOLINGS, check_layers

STYLE_LOSSES = ("mrf", "gram_masked")

# The style term's defaults per style_loss, filled where style_layers / style_weight are left null.
STYLE_LOSS_DEFAULTS = {
    # neural-doodle doodle.py: --style-layers 3_1,4_1 (Lasagne convs include the ReLU), --style-weight 25,
    # each layer's loss a mean over patch elements, as mrf_loss is.
    "mrf": {"style_layers": ["relu3_1", "relu4_1"], "style_weight": 25.0},
    # fast-neural-doodle uses neural-style's layers relu1_1..relu5_1; the weight keeps this toolkit's Gatys
    # style/content balance (gatys: 1e-6 / 1e-3) relative to content_weight 10 (maps only: it just sets the
    # balance with TV, which stays ~10 % of the loss on the Monet doodle).
    "gram_masked": {"style_layers": ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"], "style_weight": 1.0e-2},
}


@dataclass
class DoodleSemantic:
    weight: float = 10.0  # neural-doodle --semantic-weight 10: score = NCC(features) + 10 · NCC(map)
    max_colors: int = 8  # k-means clusters fitted to a map's colours
    min_fraction: float = 0.005  # clusters under 0.5 % of the pixels are anti-aliasing/JPEG noise
    unmatched: str = "error"  # error | ignore: a target colour with no style counterpart
    auto_maps: int = 0  # N > 0: segment style and content into N regions by k-means instead of maps
    auto_features: str = "color"  # color (Lab + position) | vgg (relu3_1 features + position)
    # semstyle's addition to neural-doodle (0 = its objective): a masked Gram loss on the RGB pixels in [0, 1] gives
    # each target region the colour statistics of its style region. The patch losses alone left thin or dark
    # regions too light (the Renoir tree: mean colour 0.3-0.4 from the painting's, nearer the grass); at 1e9 the
    # term sets the colours in the first steps and is < 1 % of the loss by the end.
    color_weight: float = 1.0e9


@dataclass
class MRFConfig:
    patch_size: int = 3  # both papers: 3x3 patches
    style_stride: int = 1  # neural-doodle: every style patch (CNNMRF: 2)
    stride: int = 1  # neural-doodle: every synthesis patch (CNNMRF: 2)
    rotations: int = 0  # CNNMRF: ±n rotated style copies (its examples use 1)
    rotation_step: float = 7.5  # degrees; CNNMRF target_step_rotation = pi/24
    scalings: int = 0  # CNNMRF: ±n scaled style copies
    scaling_step: float = 1.05  # CNNMRF target_step_scale
    # semstyle's search (neural-doodle: exact, on all channels, every step): an exact search at each phase's start,
    # then one PatchMatch step every second L-BFGS step on 64 principal channels. On the Monet doodle at 512 px the
    # results' exact MRF loss is the exact search's (+0.5 % over 3 seeds, which differ by up to 10 %) in 60 % of
    # the time (docs/doodle.md).
    match_channels: int = 64  # > 0: search on this many principal channels (approximate); 0: all
    search: str = "patchmatch"  # exact | patchmatch
    search_every: int = 2  # search on every n-th step, keep the matches in between (both papers: 1)


@dataclass
class DoodleConfig(RunConfig):
    method: str = "doodle"
    size: int = 512  # neural-doodle samples are 512 px wide
    steps: int = 100  # per phase: neural-doodle --iterations 100
    phases: int = 3  # neural-doodle --phases 3: 1/4, 1/2, 1 of size (ignored when `scales` is set)
    style: Optional[str] = None  # the painting whose patches are used
    style_map: Optional[str] = None  # its colour-coded region map
    style_loss: str = "mrf"  # mrf | gram_masked
    style_weight: Optional[float] = None  # null: from style_loss (STYLE_LOSS_DEFAULTS)
    style_layers: Optional[List[str]] = None  # null: from style_loss
    style_layer_weights: Optional[List[float]] = None  # null: 1 per layer (neural-doodle sums its layers)
    style_scale: float = 1.0  # style long side = phase long side × style_scale
    content: Optional[str] = None  # optional photo whose map is content_map
    content_map: Optional[str] = None  # the doodle to paint (or the content photo's map)
    # neural-doodle's --content-weight 10 (a mean squared error, as ContentLoss is) lost the photo: abandoning it
    # lowers the MRF and region-colour terms by 3.5-12x the most the content term can cost at 10 (its weight times
    # the photo's mean squared relu4_2), so the optimum is the painting re-arranged. 100, from the photo, keeps
    # faces and objects on 6 portrait and landscape pairs (docs/doodle.md, "Doodle with a content photo")
    content_weight: float = 100.0
    content_layers: List[str] = field(default_factory=lambda: ["relu4_2"])  # neural-doodle --content-layers 4_2
    resize_maps: bool = False  # resize a map whose size differs from its image instead of failing
    semantic: DoodleSemantic = field(default_factory=DoodleSemantic)
    mrf: MRFConfig = field(default_factory=MRFConfig)
    # neural-doodle --smoothness 1: mean(((dx² + dy²)·255²)^1.25) on 0-255 pixels. TVLoss(p=2.5) on [0, 1] pixels is
    # mean(|dx|^2.5 + |dy|^2.5); the two agree within 2^0.25 (equal for dx = dy) at weight 255^2.5 · 2^0.25.
    tv_weight: float = 1.24e6
    tv_power: float = 2.5
    # auto: content when a content photo is given (CNNMRF ini_method 'image'), else noise (neural-doodle --seed
    # noise, uniform in --seed-range 16:240); regions (see methods.doodle.region_colors); content; style; an image file
    init: str = "auto"
    optimizer: str = "lbfgs"
    lr: Optional[float] = None
    pooling: str = "avg"  # neural-doodle builds VGG-19 with average pooling


def validate_doodle(cfg) -> None:
    check_choice(cfg, "style_loss", STYLE_LOSSES)
    check_number(cfg, "phases", lo=1, hi=8, integer=True)
    check_number(cfg, "style_scale", lo=0, lo_open=True)
    check_number(cfg, "style_weight", lo=0)
    check(len(cfg.style_layers) > 0, "style_layers: must name at least one layer")
    check_layers(cfg.style_layers)
    check_number(cfg, "content_weight", lo=0)
    check(len(cfg.content_layers) > 0, "content_layers: name at least one layer, e.g. [relu4_2]")
    check_layers(cfg.content_layers)
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
    check_optimizer(cfg)
    check_choice(cfg, "pooling", POOLINGS)
    check(cfg.init != "", f"init: {cfg.init!r} is not noise, regions, content, style or a file")
    check(cfg.style not in (None, ""), "style: required (the painting whose patches are used)")
    auto = cfg.semantic.auto_maps > 0
    if auto:
        check(
            cfg.content is not None,
            "semantic.auto_maps: needs content (the target's regions are found in it)",
        )
        check(
            cfg.style_map is None and cfg.content_map is None,
            "semantic.auto_maps: computes both maps; remove style_map / content_map, or set semantic.auto_maps=0",
        )
    elif cfg.style_loss == "gram_masked" or cfg.content_map is not None or cfg.style_map is not None:
        check(
            cfg.style_map is not None,
            "style_map: required with content_map or style_loss=gram_masked (or use semantic.auto_maps=N)",
        )
        check(cfg.content_map is not None, "content_map: required (the doodle to paint, same colours as style_map)")
    else:
        check(
            cfg.content is not None,
            "content: required when there are no maps (give content_map to paint a doodle)",
        )
    if cfg.init == "content":  # auto picks content only when there is a photo
        check(cfg.content is not None, "init: content needs a content photo (key content)")
    if cfg.init == "regions":
        check(
            auto or cfg.content_map is not None,
            "init: regions needs maps (style_map + content_map, or semantic.auto_maps)",
        )


# The doodle's keys were nested (style.image, target.map, ...) while every other method spelled the same ideas flat
# (style, content_map, style_weight, ...); one vocabulary now, and the old spellings still load, with a warning.
# The images come last: their old parents (style, content) must be empty before the new keys take their names.
RENAMED = {
    "style.map": "style_map",
    "style.loss": "style_loss",
    "style.weight": "style_weight",
    "style.layers": "style_layers",
    "style.layer_weights": "style_layer_weights",
    "style.scale": "style_scale",
    "target.map": "content_map",
    "content.weight": "content_weight",
    "content.layers": "content_layers",
    "semantic.resize_maps": "resize_maps",
    "style.image": "style",
    "content.image": "content",
}

DOODLE = Schema(
    "doodle",
    DoodleConfig,
    validate_doodle,
    groups={"style_loss": STYLE_LOSS_DEFAULTS},
    renamed=RENAMED,
    summary="neural doodle: paint a colour-coded map with a painting's patches, region by region",
)

# CNNMRF weights a layer's MRF gradient as mrf_weight · (x − mean matched patch), i.e. summed, not averaged, over the
# layer; mrf_loss is a mean over patch elements, whose gradient is 2/(C·h·w) of that. The equivalent weight is
# therefore mrf_weight · C·h·w / 2, evaluated at CNNMRF's default max_size 384 (4:3 image: relu3_1 96x72x256,
# relu4_1 48x36x512): 1e-4 -> 88 and 44. Its content loss (MSECriterion, a mean) carries over unchanged.
CNNMRF_PRESET = {
    "size": 384,  # run_trans.lua max_size 384
    "steps": 100,  # num_iter {100, 100, 100}
    "phases": 3,  # num_res 3
    "init": "content",  # ini_method 'image'
    "pooling": "max",  # loadcaffe's VGG-19 as trained
    # tv_weight 1e-3: neural-style's squared TV (gradient = strength · neighbour differences, 0-255 pixels, summed).
    # TVLoss(p=2) is a mean over the 3HW differences on [0, 1] pixels: equal gradients at 1e-3·255²·3HW/2 ≈ 1e7 for
    # CNNMRF's 384x288.
    "tv_weight": 1.0e7,
    "tv_power": 2.0,
    "content": packaged("content/astronaut.jpg"),
    "content_weight": 20.0,  # content_weight 2e1
    "content_layers": ["relu4_2"],  # content_layers {23} = relu4_2
    "style": packaged("styles/monalisa.jpg"),
    "style_weight": 1.0,
    "style_layers": ["relu3_1", "relu4_1"],  # mrf_layers {12, 21}
    "style_layer_weights": [88.0, 44.0],  # mrf_weight {1e-4, 1e-4}, converted (see above)
    "mrf": {
        "patch_size": 3,  # mrf_patch_size {3, 3}
        "style_stride": 2,  # mrf_sample_stride {2, 2}
        "stride": 2,  # mrf_synthesis_stride {2, 2}
        "search": "exact",
        "match_channels": 0,  # CNNMRF's search: every style patch, all channels,
        "search_every": 1,
    },  # every step
    "semantic": {"weight": 0.0},  # no maps: pure feature NCC
}

CNNMRF = Schema(
    "cnnmrf",
    DoodleConfig,
    validate_doodle,
    preset=CNNMRF_PRESET,
    groups={"style_loss": STYLE_LOSS_DEFAULTS},
    renamed=RENAMED,
    summary="CNNMRF (Li & Wand 2016): content + patch MRF style, no maps (a preset of doodle)",
)
