"""Config of ``semstyle train``: the feed-forward networks (Multimodal hierarchy, Wang et al. 2017; Johnson et al.
2016 with instance norm) and how they are trained.

These schemas live in :data:`TRAIN_SCHEMAS`, not in :data:`semstyle.conf.SCHEMAS`: ``SCHEMAS`` lists the methods
``semstyle run`` optimises an image with (each has a solver in ``semstyle.api.METHODS``); a training config makes a
model file instead, so it has its own command and registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from ..errors import check
from .checks import check_choice, check_image, check_number, list_images, model_file
from .common import RunConfig, packaged
from .gatys import CONTENT_WEIGHT as GATYS_CONTENT_WEIGHT
from .gatys import GATYS_STYLE_LAYERS
from .gatys import STYLE_WEIGHT as GATYS_STYLE_WEIGHT
from .loader import Schema
from .vocab import ARCHS, POOLINGS, check_layers

# The Gatys objective of the gatys method (same α, β, layers, pooling; semstyle/conf/gatys.py): a trained network
# is scored by the objective an optimisation-based run minimises (docs/feedforward.md, quality table).
CONTENT_WEIGHT = GATYS_CONTENT_WEIGHT
STYLE_WEIGHT = GATYS_STYLE_WEIGHT


@dataclass
class FeedForwardConfig(RunConfig):
    method: str = "multimodal"  # multimodal | johnson: the network (semstyle/feedforward/networks.py)
    style: str = packaged("styles/starry_night.jpg")
    # training images: files and folders; [] = the default set (scikit-learn's sample photos + bundled photos)
    data: List[str] = field(default_factory=list)
    validation: List[str] = field(default_factory=lambda: [packaged("content/astronaut.jpg")])  # sample photos
    size: int = 1024  # last output scale (long side, px); the crops are size × size
    scales: List[int] = field(default_factory=lambda: [256, 512])  # earlier output scales: Wang et al. 256/512/1024
    scale_weights: Any = None  # λ_k per output scale (L_H = Σ λ_k L_S^k); None = 1 each
    width: int = 32  # first conv's channels (Wang et al. 2017: 32, doubling at each stride-2 conv)
    steps: int = 20000  # Adam steps (batches)
    batch_size: int = 4  # Johnson et al. 2016: 4
    lr: float = 1.0e-3  # Adam (Johnson et al. 2016; Wang et al. 2017)
    rescale: List[float] = field(default_factory=lambda: [1.0, 1.5])  # short side / crop, drawn uniformly per sample
    # crop sizes as factors of size, one drawn per step (every output scale and style target follow it): a network
    # trained at one crop size draws strokes of one size in pixels, and is scored against the style at each size
    crop_factors: List[float] = field(default_factory=lambda: [1.0])
    content_weight: float = CONTENT_WEIGHT  # α
    style_weight: float = STYLE_WEIGHT  # β
    tv_weight: float = 0.0
    content_layers: List[str] = field(default_factory=lambda: ["conv4_2"])  # Gatys et al. 2016, Sec. 2.2
    style_layers: List[str] = field(default_factory=lambda: list(GATYS_STYLE_LAYERS))  # conv1_1 ... conv5_1
    style_scale: float = 1.0  # style image long side = output long side × style_scale (Wang et al.: y_s^k)
    pooling: str = "avg"  # the Gatys objective's pooling (Gatys et al. 2016, Sec. 2), as the gatys method
    checkpoint_every: int = 100  # steps between checkpoints (safetensors)
    sample_every: int = 100  # steps between validation samples (samples/step_NNNNNN.png)
    model_name: str = "model.safetensors"  # the model file written into the run folder when training ends
    # start from this model file's weights (a path, or a bundled model's name: conf/vocab.py SHIPPED_MODELS) instead
    # of a random initialisation; Adam and the step count start afresh. Its network (method, stages, width) must be
    # this config's; the training sizes may differ (the networks are fully convolutional).
    init_model: Optional[str] = None


def validate_feedforward(cfg) -> None:
    check_choice(cfg, "method", ARCHS)
    check(cfg.style != "", "style: needs an image path, got an empty value")
    for key in ("content_weight", "style_weight", "tv_weight"):
        check_number(cfg, key, lo=0)
    for key in ("style_scale", "lr"):
        check_number(cfg, key, lo=0, lo_open=True)
    for key in ("width", "batch_size", "checkpoint_every", "sample_every"):
        check_number(cfg, key, lo=1, integer=True)
    check_choice(cfg, "pooling", POOLINGS)
    check(len(cfg.content_layers) > 0, "content_layers: name at least one layer, e.g. [relu4_2]")
    check(len(cfg.style_layers) > 0, "style_layers: name at least one layer, e.g. [relu1_1, relu2_1]")
    check_layers(cfg.content_layers)
    check_layers(cfg.style_layers)
    n = len(train_scales(cfg))
    if cfg.method == "johnson":
        check(n == 1, f"scales: johnson trains at one scale (size); set scales=[] (got {list(cfg.scales)})")
    check(n <= 3, f"scales: multimodal has 3 stages at most (style, enhance, refine); got {n} scales")
    if cfg.scale_weights is not None:
        check(
            len(cfg.scale_weights) == n,
            f"scale_weights: {len(cfg.scale_weights)} weights given for {n} output scales",
        )
        for w in cfg.scale_weights:
            check(isinstance(w, (int, float)) and w >= 0, f"scale_weights: each must be a number >= 0, got {w!r}")
    check(len(cfg.rescale) == 2, f"rescale: give [min, max], got {list(cfg.rescale)}")
    check(0 < cfg.rescale[0] <= cfg.rescale[1], f"rescale: need 0 < min <= max, got {list(cfg.rescale)}")
    check(len(cfg.crop_factors) > 0, "crop_factors: give at least one factor, e.g. [1.0]")
    smallest = train_scales(cfg)[0]
    for f in cfg.crop_factors:
        check(isinstance(f, (int, float)) and 0 < f <= 1, f"crop_factors: each must be in (0, 1], got {f!r}")
        first = round(smallest * f)
        # 32: the style image resized to a smaller long side has no map left at conv5_1 after four poolings
        check(first >= 32, f"crop_factors: {f} makes the first output {first} px; it needs at least 32")
    check(cfg.model_name.endswith(".safetensors"), f"model_name: must end in .safetensors, got {cfg.model_name!r}")


def train_scales(cfg) -> list[int]:
    """The output scales (long sides) in order: ``scales`` below ``size``, then ``size``."""
    return sorted({int(s) for s in cfg.scales if s < cfg.size}) + [int(cfg.size)]


MULTIMODAL = Schema(
    "multimodal",
    FeedForwardConfig,
    validate_feedforward,
    summary="train the Multimodal hierarchical network (Wang et al. 2017): style, enhance and refine subnets",
)
JOHNSON = Schema(
    "johnson",
    FeedForwardConfig,
    validate_feedforward,
    preset={"size": 256, "scales": [], "width": 32},
    summary="train the single-scale baseline (Johnson et al. 2016 with instance norm) from the same blocks",
)


def check_train_files(cfg) -> None:
    """The files a training config names, as one-line errors before torch loads: the ``data`` sources
    (:func:`~.checks.list_images`; empty = the bundled default set) and the style and validation photos, each
    image decoded to its end (:func:`~.checks.check_image`: the trainer reads every training image before its
    first step, so this costs less than that), and ``init_model`` (whose weights the trainer checks against the
    network once torch is loaded)."""
    if len(cfg.data):
        for path in list_images(list(cfg.data), "data"):
            check_image(path, "training image")
    check_image(cfg.style, "style image")
    for path in cfg.validation:
        check_image(path, "validation image")
    if cfg.init_model is not None:
        model_file(cfg.init_model, "init_model")


TRAIN_SCHEMAS: dict[str, Schema] = {s.name: s for s in (MULTIMODAL, JOHNSON)}
"""The training configs of ``semstyle train``, by network."""
