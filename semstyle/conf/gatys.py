"""Config of the ``gatys`` method (Gatys, Ecker & Bethge 2016, with its follow-up extensions) and of the
``reconstruct`` method (the paper's content and style reconstructions, Fig. 1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import ListConfig

from ..errors import check
from .checks import check_bool, check_choice, check_number, is_list, numbers
from .common import RunConfig, packaged
from .loader import Schema
from .vocab import OPTIMIZERS, POOLINGS, check_layers

GATYS_CONTENT_LAYERS = ["conv4_2"]  # Gatys et al. 2016, Sec. 2.2
GATYS_STYLE_LAYERS = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]  # Gatys et al. 2016, Sec. 3
INITS = ("noise", "content", "style")
PRESERVE_MODES = ("none", "luminance", "histogram")
HISTOGRAM_METHODS = ("sqrt", "cholesky")

# Gatys α and β in Caffe units (0-255 inputs; activations ~58x torchvision's, so losses ~1e6x): chosen by eye on the
# bundled images. The reconstructions reuse them: L-BFGS in float32 stalls or diverges on the raw Gram loss.
CONTENT_WEIGHT = 1.0e-3
STYLE_WEIGHT = 1.0e-6


@dataclass
class ColorConfig:
    preserve: str = "none"  # none | luminance | histogram (Gatys, Bethge, Hertzmann & Shechtman 2016)
    histogram_method: str = "sqrt"  # sqrt (Σ^½ map, the paper's choice) | cholesky


@dataclass
class LaplacianConfig:
    weight: float = 0.0  # γ; 0 = off. lap_style.lua uses 100 on 0-255 images with content weight 5: 1e3 here
    pool_sizes: List[int] = field(default_factory=lambda: [4, 16])  # p of Li et al. 2017 (4 alone there by default)
    pool_weights: Any = None  # relative weight per pool size; None = 1 each


@dataclass
class GatysConfig(RunConfig):
    method: str = "gatys"
    content: str = packaged("content/tubingen.jpg")
    style: Any = packaged("styles/starry_night.jpg")  # one path, or a list of paths to blend
    style_weights: Any = None  # blend weight per style image; None = equal
    style_weights_normalize: bool = True  # divide the blend weights by their sum (Gatys 2016 / neural-style blend)
    size: int = 384
    steps: int = 100
    content_weight: float = CONTENT_WEIGHT  # α
    style_weight: float = STYLE_WEIGHT  # β
    tv_weight: float = 0.0
    tv_power: float = 2.0  # p of mean|Δ|^p: 2 is smooth for L-BFGS; 1 is neural-style's (and kornia's) anisotropic TV
    content_layers: List[str] = field(default_factory=lambda: list(GATYS_CONTENT_LAYERS))
    style_layers: Any = field(default_factory=lambda: list(GATYS_STYLE_LAYERS))  # one list, or one list per style
    style_layer_weights: Any = None  # None = equal, w_l = 1/L; a list (per layer) or a list of lists (per style)
    style_scale: float = 1.0  # style image long side = scale long side × style_scale
    init: str = "content"  # noise | content | style | <image file>
    optimizer: str = "lbfgs"  # lbfgs | adam | sgd | rmsprop
    lr: Optional[float] = None  # None = the optimiser's default
    # project the pixels into [0, 1] after each step. false: unconstrained, as neural-style and neural-style-pt optimise
    # (only the saved picture is clamped), e.g. to minimise the same problem as those tools
    clamp: bool = True
    # Gatys et al. 2016, Sec. 2: average pooling "improves the gradient flow and one obtains slightly more
    # appealing results" (max = the network as trained)
    pooling: str = "avg"
    color: ColorConfig = field(default_factory=ColorConfig)
    laplacian: LaplacianConfig = field(default_factory=LaplacianConfig)


def style_paths(style) -> list:
    """``style`` (one path or a list of them) as a non-empty list."""
    styles = list(style) if is_list(style) else [style]
    check(len(styles) > 0, "style: the list of style images is empty; give at least one")
    return styles


def style_plan(cfg, n_styles: int) -> list[tuple[float, list[str], list[float] | None]]:
    """Per style image: ``(blend weight w_i, layers, layer weights or None)``, checked against ``n_styles``."""
    if cfg.style_weights is None:
        blend = [1.0] * n_styles
    else:
        blend = numbers(cfg.style_weights, "style_weights")
        check(len(blend) == n_styles, f"style_weights: {len(blend)} weights given for {n_styles} style images")
    check(sum(blend) > 0, f"style_weights: must not all be 0, got {blend}")
    if cfg.style_weights_normalize:
        blend = [w / sum(blend) for w in blend]

    layers = cfg.style_layers
    check(is_list(layers) and len(layers) > 0, "style_layers: must name at least one layer")
    per_style = all(is_list(entry) for entry in layers)
    check(
        per_style or not any(is_list(entry) for entry in layers),
        "style_layers: give one list of layers, or one list per style image, not a mix",
    )
    if per_style:
        check(len(layers) == n_styles, f"style_layers: {len(layers)} layer lists given for {n_styles} style images")
    layer_lists = [list(entry) for entry in layers] if per_style else [list(layers)] * n_styles
    for entry in layer_lists:
        check(len(entry) > 0, "style_layers: a style image's layer list is empty; name at least one layer")
        check_layers(entry)

    weights = cfg.style_layer_weights
    if weights is None:
        weight_lists = [None] * n_styles
    elif is_list(weights) and len(weights) > 0 and all(w is None or is_list(w) for w in weights):
        check(len(weights) == n_styles, f"style_layer_weights: {len(weights)} lists given for {n_styles} style images")
        weight_lists = [None if w is None else numbers(w, "style_layer_weights") for w in weights]
    else:
        weight_lists = [numbers(weights, "style_layer_weights")] * n_styles
    for entry, w in zip(layer_lists, weight_lists):
        check(
            w is None or len(w) == len(entry),
            f"style_layer_weights: {len(w) if w else 0} weights given for the {len(entry)} layers {entry}",
        )
    return list(zip(blend, layer_lists, weight_lists))


def check_optimizer(cfg, choices=OPTIMIZERS) -> None:
    check_choice(cfg, "optimizer", choices)
    if cfg.lr is not None:
        check_number(cfg, "lr", lo=0, lo_open=True)


def validate_gatys(cfg) -> None:
    for key in ("content_weight", "style_weight", "tv_weight", "laplacian.weight"):
        check_number(cfg, key, lo=0)
    check_number(cfg, "style_scale", lo=0, lo_open=True)
    check_number(cfg, "tv_power", lo=1, hi=4)
    check_optimizer(cfg)
    check_choice(cfg, "pooling", POOLINGS)
    check_choice(cfg, "color.preserve", PRESERVE_MODES)
    check_choice(cfg, "color.histogram_method", HISTOGRAM_METHODS)
    check(len(cfg.content_layers) > 0, "content_layers: name at least one layer, e.g. [conv4_2]")
    check_layers(cfg.content_layers)
    check(cfg.content != "", "content: needs an image path, got an empty value")
    styles = style_paths(cfg.style)
    for s in styles:
        check(isinstance(s, str) and s != "", f"style: each style image must be a file path, got {s!r}")
    check_bool(cfg, "style_weights_normalize")
    check_bool(cfg, "clamp")
    style_plan(cfg, len(styles))
    pools = cfg.laplacian.pool_sizes
    check(len(pools) > 0, "laplacian.pool_sizes: give at least one pool size, e.g. [4, 16]")
    for p in pools:
        check(p >= 1, f"laplacian.pool_sizes: each must be an integer >= 1, got {p!r}")
    if cfg.laplacian.pool_weights is not None:
        pool_weights = numbers(cfg.laplacian.pool_weights, "laplacian.pool_weights")
        check(
            len(pool_weights) == len(pools),
            f"laplacian.pool_weights: {len(pool_weights)} weights given for {len(pools)} pool sizes",
        )
    check(cfg.init != "", "init: needs noise, content, style or an image file, got an empty value")


GATYS = Schema(
    "gatys",
    GatysConfig,
    validate_gatys,
    summary="Gatys et al. 2016: content + Gram style losses on VGG-19, optimised on the pixels",
)


# -- reconstructions ----------------------------------------------------------------------------------------------

RECONSTRUCT_TARGETS = ("content", "style")


@dataclass
class ReconstructConfig(RunConfig):
    method: str = "reconstruct"
    image: str = packaged("content/tubingen.jpg")
    target: str = "content"  # content | style
    layers: List[str] = field(default_factory=lambda: list(GATYS_STYLE_LAYERS))  # Gatys et al. 2016, Fig. 1
    growing: bool = True  # style: subsets [l1], [l1, l2], ... (Fig. 1); false: one reconstruction from all layers
    size: int = 256
    steps: int = 200
    init: str = "noise"  # white noise, as in the paper; or content (the image itself) | <image file>
    optimizer: str = "lbfgs"  # Gatys et al. 2016, Sec. 2.1: L-BFGS works best for image synthesis
    lr: Optional[float] = None
    content_weight: float = CONTENT_WEIGHT
    style_weight: float = STYLE_WEIGHT
    tv_weight: float = 0.0
    pooling: str = "avg"  # Gatys et al. 2016: average pooling for image synthesis


def validate_reconstruct(cfg) -> None:
    check_choice(cfg, "target", RECONSTRUCT_TARGETS)
    check(isinstance(cfg.layers, ListConfig) and len(cfg.layers) > 0, "layers: name at least one layer, e.g. [conv4_2]")
    check_layers(cfg.layers)
    for key in ("content_weight", "style_weight", "tv_weight"):
        check_number(cfg, key, lo=0)
    check_optimizer(cfg)
    check_choice(cfg, "pooling", POOLINGS)
    check(cfg.init != "style", "init: style is not available for reconstructions; use noise, content or a file")
    check(cfg.init != "", f"init: {cfg.init!r} is not noise, content or a file")
    check(cfg.image != "", "image: needs an image path, got an empty value")
    weight = cfg.content_weight if cfg.target == "content" else cfg.style_weight
    check(weight > 0, f"{cfg.target}_weight: must be > 0 for a {cfg.target} reconstruction")


RECONSTRUCT = Schema(
    "reconstruct",
    ReconstructConfig,
    validate_reconstruct,
    summary="content and style reconstructions from VGG-19 layers (Gatys et al. 2016, Fig. 1)",
)
