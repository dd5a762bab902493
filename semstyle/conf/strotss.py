"""Config of the ``strotss`` method (Kolkin, Salavon & Shakhnarovich 2019); defaults follow the reference code
(nkolkin13/STROTSS ``styleTransfer.py``, ``st_helper.py``), see docs/strotss.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from ..errors import check
from .checks import check_choice, check_number
from .common import RunConfig, packaged
from .gatys import check_optimizer
from .loader import Schema
from .vocab import OPTIMIZERS, POOLINGS


@dataclass
class StrotssConfig(RunConfig):
    method: str = "strotss"
    content: str = packaged("content/tubingen.jpg")
    style: str = packaged("styles/starry_night.jpg")
    content_map: Optional[str] = None  # colour-coded region map of the content (same size); needs style_map
    style_map: Optional[str] = None  # region map of the style; same colours name the same regions
    resize_maps: bool = False  # resize a map whose size differs from its image's instead of failing
    size: int = 512  # reference: max_scl 5 -> long sides 64, 128, 256, 512
    scales: List[int] = field(default_factory=lambda: [64, 128, 256])
    steps: int = 250  # per scale; reference st_helper.py MAX_ITER = 250 (futscdav/strotss: 200)
    content_weight: float = (
        16.0  # α at the first scale: reference CLI weight 1.0 × 16 (paper Sec. 2.5); halved per scale
    )
    moment_weight: float = 1.0  # reference objective: moment_weight=1.0
    samples: int = 1024  # output locations per region and step (reference get_feature_inds: 32**2)
    style_samples: int = 5000  # style locations per region and scale (reference: 5 × 1000)
    optimizer: str = "rmsprop"  # reference: optim.RMSprop over the pyramid levels
    lr: float = 2.0e-3  # reference styleTransfer.py: lr = 2e-3 ...
    final_lr: float = 1.0e-3  # ... and 1e-3 at the last scale of a multi-scale run
    pyramid_levels: int = 5  # reference: dec_lap_pyr(stylized_im, 5)
    init: str = "style_mean"  # style_mean (reference: style's mean colour + content's finest band) | content | <file>
    style_scale: float = 1.0  # style long side = scale long side × style_scale (reference: same long side)
    pooling: str = "max"  # the reference's VGG-16 as trained


def validate_strotss(cfg) -> None:
    for key in ("content_weight", "moment_weight"):
        check_number(cfg, key, lo=0)
    for key in ("lr", "final_lr", "style_scale"):
        check_number(cfg, key, lo=0, lo_open=True)
    check_number(cfg, "samples", lo=2, hi=16384, integer=True)
    check_number(cfg, "style_samples", lo=1, hi=100000, integer=True)
    check_number(cfg, "pyramid_levels", lo=0, hi=10, integer=True)
    check_optimizer(cfg, [o for o in OPTIMIZERS if o != "lbfgs"])  # the loss is stochastic: no line search
    check_choice(cfg, "pooling", POOLINGS)
    check(cfg.init != "", f"init: {cfg.init!r} is not style_mean, content or an image file")
    check(
        (cfg.content_map is None) == (cfg.style_map is None),
        "content_map and style_map: spatial guidance needs both maps (or neither)",
    )


STROTSS = Schema(
    "strotss",
    StrotssConfig,
    validate_strotss,
    summary="STROTSS (Kolkin et al. 2019): relaxed optimal transport + self-similarity, on a pyramid",
)
