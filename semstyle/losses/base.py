"""Shared plumbing of the loss modules."""

from __future__ import annotations

import torch
from torch import nn

from ..core.encoder import check_layers
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


class LayerLoss(nn.Module):
    """A loss summed over layers with per-layer weights, comparing against cached per-layer targets."""

    def __init__(self, layers, weights=None):
        super().__init__()
        self.weights = layer_weights(layers, weights)
        self.layers = tuple(self.weights)
        self.targets: dict[str, torch.Tensor] = {}

    def target_of(self, feature: torch.Tensor) -> torch.Tensor:
        """What is cached from a target feature map (the map itself by default)."""
        return feature.detach()

    def set_target(self, features: dict[str, torch.Tensor]) -> None:
        self.targets = {layer: self.target_of(features[layer]) for layer in self.layers}

    def layer_loss(self, feature: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        if not self.targets:
            raise RuntimeError(f"{type(self).__name__}: set_target() was not called")
        return sum(w * self.layer_loss(features[layer], self.targets[layer]) for layer, w in self.weights.items())
