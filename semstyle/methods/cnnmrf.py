"""CNNMRF (Li & Wand 2016, "Combining Markov Random Fields and Convolutional Neural Networks for Image
Synthesis"): content + style, no maps; every 3x3 patch of the result's relu3_1/relu4_1 features is pulled to its
nearest style patch.

The same code as the ``doodle`` method (same config keys, same :class:`~semstyle.losses.mrf.MRFLoss`), with the
defaults of CNNMRF's ``run_trans.lua`` (chuanli11/CNNMRF). Maps (``style.map``/``target.map``) may still be given
and then guide the matching exactly as in ``doodle``.
"""

from __future__ import annotations

import copy

import torch
from omegaconf import OmegaConf

from ..config import load_config
from ..runs import RunDir
from . import doodle as _doodle

# CNNMRF weights a layer's MRF gradient as mrf_weight · (x − mean matched patch), i.e. summed, not averaged, over
# the layer; mrf_loss is a mean over patch elements, whose gradient is 2/(C·h·w) of that. The equivalent weight is
# therefore mrf_weight · C·h·w / 2, evaluated at CNNMRF's default max_size 384 (4:3 image: relu3_1 96x72x256,
# relu4_1 48x36x512): 1e-4 -> 88 and 44. Its content loss (MSECriterion, a mean) carries over unchanged.
DEFAULTS = copy.deepcopy(_doodle.DEFAULTS)
DEFAULTS.update({
    "size": 384,  # run_trans.lua max_size 384
    "steps": 100,  # num_iter {100, 100, 100}
    "phases": 3,  # num_res 3
    "init": "content",  # ini_method 'image'
    "pooling": "max",  # loadcaffe's VGG-19 as trained
    # tv_weight 1e-3: neural-style's squared TV (gradient = strength · neighbour differences, 0-255 pixels, summed).
    # TVLoss(p=2) is a mean over the 3HW differences on [0, 1] pixels: equal gradients at 1e-3·255²·3HW/2 ≈ 1e7
    # for CNNMRF's 384x288.
    "tv_weight": 1.0e7,
    "tv_power": 2.0,
})
DEFAULTS["content"] = {"image": "assets/content/astronaut.jpg", "weight": 20.0,  # content_weight 2e1
                       "layers": ["relu4_2"]}  # content_layers {23} = relu4_2
DEFAULTS["style"] = dict(DEFAULTS["style"], image="assets/styles/monalisa.jpg", weight=1.0,
                         layers=["relu3_1", "relu4_1"],  # mrf_layers {12, 21}
                         layer_weights=[88.0, 44.0])  # mrf_weight {1e-4, 1e-4}, converted (see above)
DEFAULTS["mrf"] = dict(DEFAULTS["mrf"], patch_size=3,  # mrf_patch_size {3, 3}
                       style_stride=2,  # mrf_sample_stride {2, 2}
                       stride=2,  # mrf_synthesis_stride {2, 2}
                       search="exact", match_channels=0,  # CNNMRF's search: every style patch, all channels,
                       search_every=1)  # every step
DEFAULTS["semantic"] = dict(DEFAULTS["semantic"], weight=0.0)  # no maps: pure feature NCC

validate = _doodle.validate


def transfer(content, style, **options) -> torch.Tensor:
    """Python API: ``transfer(content, style, size=256, steps=50, ...)``; paths or ``(1, 3, H, W)`` tensors."""
    user = OmegaConf.create({"method": "cnnmrf"})
    for key, value in options.items():
        OmegaConf.update(user, key, value, force_add=True)
    for key, value in (("content.image", content), ("style.image", style)):
        OmegaConf.update(user, key, "<tensor>" if isinstance(value, torch.Tensor) else str(value), force_add=True)
    cfg = load_config(user)
    return _doodle.paint(_doodle.prepare(cfg, style=style, content=content), cfg)


def run(cfg, run_dir: RunDir) -> torch.Tensor:
    return _doodle.run(cfg, run_dir)
