"""Total-variation regulariser (Mahendran & Vedaldi 2015), as used by Gatys-style methods against high-frequency noise."""

from __future__ import annotations

import torch
from torch import nn


def tv_loss(image: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Mean ``|Δx|^p + |Δy|^p`` of neighbouring pixels of ``(B, C, H, W)``; size-normalised.

    ``p=1`` is the anisotropic TV of :func:`kornia.losses.total_variation` (divided by the number of
    differences); ``p=2`` (default) is smooth at zero, which L-BFGS prefers.
    """
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs().pow(p).mean()
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs().pow(p).mean()
    return dx + dy


class TVLoss(nn.Module):
    """Total variation of the image being optimised (reads ``features["image"]``)."""

    layers: tuple[str, ...] = ()

    def __init__(self, p: float = 2.0):
        super().__init__()
        self.p = p

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return tv_loss(features["image"], self.p)
