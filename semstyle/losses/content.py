"""Content loss (Gatys, Ecker & Bethge 2016, eq. 1), as a mean rather than a sum so it does not grow with size."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import LayerLoss


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of two feature maps ``(B, C, h, w)``."""
    return F.mse_loss(features, target.expand_as(features))


class ContentLoss(LayerLoss):
    """Content loss over ``layers`` (default Gatys: ``conv4_2``) against a cached target."""

    def __init__(self, layers=("conv4_2",), weights=None):
        super().__init__(layers, weights)

    def layer_loss(self, feature, target):
        return content_loss(feature, target)
