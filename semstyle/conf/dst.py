"""Config of the ``dst`` method (Deformable Style Transfer, Kim, Kolkin, Salavon & Shakhnarovich 2020).

``base`` is a config group: ``strotss`` (the paper) or ``gram`` (Gatys's losses). The weights and optimiser
settings left null are filled from the chosen base's table, so the run folder's ``config.yaml`` holds the values
that ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from ..errors import check
from .checks import check_bool, check_choice, check_number
from .common import RunConfig, packaged
from .keypoints import DST_MAX_POINTS, DST_SPACING, DST_WORK_SIZE
from .loader import Schema
from .vocab import OPTIMIZERS, POOLINGS

BASES = ("strotss", "gram")
KEYPOINT_SOURCES = ("auto", "files", "nbb", "faces")
# Gram base: image TV against Adam's colour speckle (chroma high-pass 0.016 -> 0.004 on the astronaut / Mona Lisa,
# 0.014 -> 0.0025 on the DST example, alignment unchanged; faces blur from 10 up: docs/dst.md, *DST on Gatys*)
TV_WEIGHT_GRAM = 3.0
WARP_LR = 0.3  # DST styletransfer.py: θ takes the image's lr (0.3; warp_lr_fac 1), in px at the final size

# Per-base defaults for the keys left null.
BASE_DEFAULTS = {
    # DST README / job_example.sh: "We like using 8, 0.5, and 50" (alpha, beta, gamma); optim sgd, lr 0.3;
    # styletransfer.py: SGD momentum 0.9, content weight × 2^(scales-1-scale), i.e. 32/16/8 at 64/128/256 px,
    # the same lr for θ (warp_lr_fac 1). DST's images are in [-1, 1] (utils_misc.pil_to_tensor), ours in [0, 1]:
    # the gradient doubles and a step moves half as far, so its lr 0.3 on the pyramid is 0.3 / 4 here; θ is in
    # pixels in both, so it keeps 0.3.
    "strotss": {
        "content_weight": 8.0,
        "style_weight": 1.0,
        "warp_weight": 0.5,
        "warp_tv_weight": 50.0,
        "tv_weight": 0.0,  # DST has no smoothness term on the image
        "optimizer": "sgd",
        "lr": 0.075,
        "momentum": 0.9,
        "scale_content_weight": True,
        "pooling": "max",
        "warp_sgd": False,
        "warp_optimizer": "adam",
        "scales": [64, 128],  # DST styletransfer.py: 64, 128, 256 px
        "steps": 150,  # DST job_example.sh: max_iter 150 at each of the 3 scales
    },
    # No public reference (docs/dst.md has the experiments). The image: Gatys's content/style ratio (1e-3 / 1e-6,
    # semstyle.conf.gatys) with Adam, which is blind to the loss scale. The scale itself sets how hard the warped
    # style term pulls θ: 5e-10 makes that pull as weak relative to the keypoint term as STROTSS's is in DST
    # (measured per point on the DST example: 0.0006 vs β·L_warp's 0.016), so θ keeps all of DST's warp settings:
    # β 0.5, γ 50 and momentum-SGD steps of 0.3 (at Gatys's 1e-6 the Gram term pulls ~20x harder and folds the warp).
    # style_weight 5e-11, not 5e-10 (Gatys's 1e3 ratio): on portraits the Gram term turned eyes, nose and mouth into a
    # dark blotchy mask (issue 16; astronaut / Mona Lisa and CNNMRF portrait at 128 px: blotches at 1e3, fewer at
    # 3e3, none at 1e4 content : style), and the warped Gram term then pulls θ 10x less.
    "gram": {
        "content_weight": 5.0e-7,
        "style_weight": 5.0e-11,
        "warp_weight": 0.5,
        "warp_tv_weight": 50.0,
        "tv_weight": TV_WEIGHT_GRAM,
        "optimizer": "adam",
        "lr": 0.02,
        "momentum": 0.0,
        "scale_content_weight": False,
        "pooling": "avg",
        "warp_sgd": True,
        "warp_optimizer": "adam",
        # One scale, 120 Adam steps at 256 px: 0.54-0.57 of the CPU time of DST's 150 at each of 64, 128 and 256 px,
        # the image's terms (content, both style terms, TV) -1.6 / +0.2 / +1.2 % on three portrait pairs and the total
        # objective within 0.01 % (docs/benchmarks.md, *Steps per scale*). The coarse scales bought nothing here:
        # 150 + 150 + 75 took 0.61-0.71 of the time for +1.2 to +3.8 %. 150 at each coarse scale if scales are set.
        "scales": [],
        "coarse_steps": 150,
        "steps": 120,
    },
}


@dataclass
class DSTConfig(RunConfig):
    method: str = "dst"
    content: str = packaged("content/astronaut.jpg")
    style: str = packaged("styles/monalisa.jpg")
    base: str = "strotss"  # strotss (the paper) | gram (Gatys et al. 2016 losses)
    # DST job_example.sh: im_size 256 and 3 scales (styletransfer.py: 64, 128, 256), max_iter 150 per scale
    size: int = 256
    scales: Optional[List[int]] = None  # coarse scales below size; null = the base's ([64, 128] strotss, [] gram)
    steps: Optional[int] = None  # at size (and at the coarser scales unless coarse_steps); null = the base's
    keypoints: str = "auto"  # auto (files if given, else nbb) | files | nbb | faces
    content_keypoints: Optional[str] = None  # DST-format keypoint files (row, col per line, original pixels)
    style_keypoints: Optional[str] = None
    nbb_size: int = DST_WORK_SIZE  # NBB working size (DST job_example.sh: --imageSize 256 --fast)
    max_points: int = DST_MAX_POINTS  # DST cleanpoints.py via job_example.sh: max_num_points 80, b 10 px
    min_point_distance: float = DST_SPACING
    # null = the base's default (BASE_DEFAULTS)
    content_weight: Optional[float] = None  # α
    style_weight: Optional[float] = None  # weight of each style term (1 in DST's formula)
    warp_weight: Optional[float] = None  # β
    warp_tv_weight: Optional[float] = None  # γ: total variation of the warp's flow field (was reg_weight)
    tv_weight: Optional[float] = None  # total variation (p = 2) of the image X
    optimizer: Optional[str] = None
    lr: Optional[float] = None
    momentum: Optional[float] = None  # SGD only
    warp_lr: Optional[float] = None  # learning rate of θ (px at the final size); null with lbfgs: one step size
    warp_sgd: Optional[bool] = None  # with optimizer adam: θ still takes DST's momentum-SGD steps (lr warp_lr, 0.9)
    warp_optimizer: Optional[str] = None  # adam: θ on its own Adam, steps of ~warp_lr px | sgd: as DST (see docs)
    scale_content_weight: Optional[bool] = None  # α × size / scale long side at coarser scales (DST: 32, 16, 8)
    border_points: int = 80  # fixed points per image side (DST utils_keypoints.py: border_num_pts 80)
    warp_grid: int = (
        64  # side of the lattice the spline is evaluated on during the optimisation (semstyle.geometry.tps)
    )
    target_margin: float = 5  # targets are clamped this many px (at 256) inside the image (DST styletransfer.py)
    naive_baseline: bool = False  # also stylise the keypoint-warped content with the base method alone
    pooling: Optional[str] = None  # VGG pooling; null = the base's
    # strotss base: Laplacian pyramid levels at the final size (DST utils_pyr: pyr_levs 5); a coarser scale
    # optimises the levels at and below its size (DST styletransfer.py: s_pyr[begin_ind:])
    pyramid_levels: int = 5
    samples: int = 2048  # strotss base: output locations per step (DST styletransfer.py: n = 2048)
    style_samples: int = 5000  # strotss base: style locations per scale (DST: 5 draws of 1000)


def validate_dst(cfg) -> None:
    check_choice(cfg, "base", BASES)
    check_choice(cfg, "keypoints", KEYPOINT_SOURCES)
    for key in ("content_weight", "style_weight", "warp_weight", "warp_tv_weight", "tv_weight", "momentum"):
        check_number(cfg, key, lo=0)
    check_number(cfg, "lr", lo=0, lo_open=True)
    check_choice(cfg, "optimizer", OPTIMIZERS)
    if cfg.warp_lr is None and cfg.optimizer != "lbfgs":
        cfg.warp_lr = WARP_LR
    check(
        cfg.optimizer != "lbfgs" or cfg.warp_lr is None,
        "warp_lr: L-BFGS has one step size for all parameters; set optimizer to adam or sgd, or warp_lr to null",
    )
    if cfg.warp_lr is not None:
        check_number(cfg, "warp_lr", lo=0, lo_open=True)
    check_choice(cfg, "pooling", POOLINGS)
    check_bool(cfg, "warp_sgd")
    check_choice(cfg, "warp_optimizer", ("adam", "sgd"))
    check_bool(cfg, "scale_content_weight")
    check_number(cfg, "border_points", lo=0, hi=1000, integer=True)
    check_number(cfg, "warp_grid", lo=2, integer=True)
    check_number(cfg, "target_margin", lo=0)
    check_number(cfg, "nbb_size", lo=32, hi=2048, integer=True)
    check_number(cfg, "max_points", lo=3, integer=True)
    check_number(cfg, "min_point_distance", lo=0)
    check_number(cfg, "pyramid_levels", lo=0, hi=10, integer=True)
    check_number(cfg, "samples", lo=2, integer=True)
    check_number(cfg, "style_samples", lo=1, integer=True)
    has_a, has_b = cfg.content_keypoints is not None, cfg.style_keypoints is not None
    check(has_a == has_b, "content_keypoints and style_keypoints: give both keypoint files or neither")
    check(cfg.keypoints != "files" or has_a, "keypoints=files needs content_keypoints and style_keypoints")


DST = Schema(
    "dst",
    DSTConfig,
    validate_dst,
    groups={"base": BASE_DEFAULTS},
    renamed={"reg_weight": "warp_tv_weight"},
    summary="Deformable Style Transfer (Kim et al. 2020): a thin-plate-spline warp optimised with the image",
)
