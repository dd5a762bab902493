"""The words a config or a command may use: VGG-19 layer names, optimisers, precisions, poolings, file suffixes,
model and metric names.

Torch-free, so that the config can be checked (and the CLI can answer) before the network is loaded.
"""

from __future__ import annotations

import re

from ..errors import check

# (block, number of convs, channels) of VGG-19 (Simonyan & Zisserman 2015, Table 1, column E).
VGG19_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))


def _layer_names() -> tuple[str, ...]:
    names = []
    for block, convs, _ in VGG19_BLOCKS:
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return tuple(names)


LAYER_NAMES: tuple[str, ...] = _layer_names()
"""All addressable layers in forward order: ``conv1_1, relu1_1, conv1_2, relu1_2, pool1, ..., pool5``."""

OPTIMIZERS = ("lbfgs", "adam", "sgd", "rmsprop")
PRECISIONS = ("auto", "fp32", "bf16")
ARCHS = ("multimodal", "johnson")  # the feed-forward networks (semstyle/feedforward/networks.py)
CONVS = ("auto", "native", "nnpack")  # the encoder's convolution kernels (core/encoder.py, resolve_conv)
POOLINGS = ("max", "avg")


def check_layers(layers) -> None:
    """Raise a :class:`~semstyle.errors.ConfigError` naming the first unknown layer name."""
    for layer in layers:
        check(layer in LAYER_NAMES, f"unknown VGG-19 layer {layer!r}; valid layers look like conv4_2, relu3_1, pool2")


# bundled feed-forward models by name, files under semstyle/assets/models/ (docs/feedforward.md: how each was trained)
SHIPPED_MODELS = {
    "multimodal": "models/starry_night_multimodal.safetensors",
    "multimodal-1024": "models/starry_night_multimodal_1024.safetensors",
    "johnson": "models/starry_night_johnson.safetensors",
    "johnson-1024": "models/starry_night_johnson_1024.safetensors",
}

# the files the feed-forward commands read: training photos, and stylize's inputs
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")

SWEEP_FILE = "sweep.json"  # what makes a folder a sweep (semstyle.experiments.sweep)

# the metrics of a finished run (semstyle.experiments.metrics), in table order (a run has those that apply to it)
METRICS = (
    "ssim",
    "psnr",
    "content_distance",
    "style_distance",
    "color_distance",
    "perceptual_distance",
    "region_fidelity",
    "keypoint_error",
    "seconds",
    "peak_mb",
    "steps",
)
METRIC_SIZE = 256  # the long side the metrics compare images at, so that runs of any size compare


def is_metric(name: str) -> bool:
    """``name`` is a metric a run can have: one of :data:`METRICS`, or ``style_distance_N``, the distance to the
    N-th style of a blend."""
    return name in METRICS or re.fullmatch(r"style_distance_\d+", name) is not None


# STROTSS's hypercolumn layers, for STROTSS and DST (how they map the reference's VGG-16: semstyle.core.hypercolumn)
STROTSS_LAYERS: tuple[str, ...] = (
    "relu1_1",
    "relu1_2",
    "relu2_1",
    "relu2_2",
    "relu3_1",
    "relu3_2",
    "relu3_3",
    "relu4_3",
    "relu5_3",
)
