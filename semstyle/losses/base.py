"""The one contract of every loss module, and the plumbing of per-layer losses.

Every loss (pystiche's pattern: targets set once, then a score per step) is a :class:`Loss`:

- ``layers``: the encoder layers :meth:`~Loss.forward` reads; ``"image"`` names the pixels themselves;
- ``set_target(features, masks=None)``: cache what the loss compares against, from the target image's
  ``{layer: (B, C, h, w)}`` features (once per scale); ``masks``: that image's
  :class:`~semstyle.core.semantic.RegionMasks`, for losses that work region by region;
- ``set_input_masks(masks)``: the :class:`~semstyle.core.semantic.RegionMasks` of the image being optimised;
- ``forward(features) -> scalar``: the loss of a batch ``{layer: (B, C, h, w)}``.

Masks travel as :class:`~semstyle.core.semantic.RegionMasks`, which pools them to each layer's resolution once,
for every loss that reads them.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.encoder import check_layers
from ..core.semantic import RegionMasks
from ..errors import check


def layer_weights(layers, weights=None) -> dict[str, float]:
    """Per-layer weights: equal ``1/L`` when ``weights`` is None (Gatys et al. 2016, w_l = 1/5), else as given.

    Besides VGG-19 layers, ``"image"`` names the pixels themselves (:meth:`Objective.features` passes them on)."""
    layers = list(layers)
    check(len(layers) > 0, "a loss needs at least one layer")
    check_layers([layer for layer in layers if layer != "image"])
    if weights is None:
        return {layer: 1.0 / len(layers) for layer in layers}
    weights = list(weights)
    check(len(weights) == len(layers), f"{len(weights)} layer weights given for {len(layers)} layers {layers}")
    check(all(w >= 0 for w in weights), f"layer weights must be >= 0, got {weights}")
    return dict(zip(layers, map(float, weights)))


class Loss(nn.Module):
    """The contract above. A loss with no target (TV) keeps the defaults; a loss that is not region-wise refuses
    masks with a one-line error instead of ignoring them."""

    layers: tuple[str, ...] = ()
    region_wise = False  # True: set_target and set_input_masks take RegionMasks

    def set_target(self, features: dict[str, torch.Tensor], masks: RegionMasks | None = None) -> None:
        self._check_masks(masks)

    def set_input_masks(self, masks: RegionMasks | None) -> None:
        self._check_masks(masks)

    def _check_masks(self, masks) -> None:
        check(masks is None or self.region_wise, f"{type(self).__name__} does not work region by region: no masks")


class LayerLoss(Loss):
    """A loss summed over layers with per-layer weights, comparing against cached per-layer targets."""

    def __init__(self, layers, weights=None):
        super().__init__()
        self.weights = layer_weights(layers, weights)
        self.layers = tuple(self.weights)
        self.targets: dict[str, torch.Tensor] = {}

    def target_of(self, feature: torch.Tensor) -> torch.Tensor:
        """What is cached from a target feature map (the map itself by default)."""
        return feature.detach()

    def set_target(self, features: dict[str, torch.Tensor], masks: RegionMasks | None = None) -> None:
        self._check_masks(masks)
        self.targets = {layer: self.target_of(features[layer]) for layer in self.layers}

    def layer_loss(self, feature: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        if not self.targets:
            raise RuntimeError(f"{type(self).__name__}: set_target() was not called")
        return sum(w * self.layer_loss(features[layer], self.targets[layer]) for layer, w in self.weights.items())
