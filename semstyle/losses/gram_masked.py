"""Masked Gram style loss (Ulyanov, "fast-neural-doodle", 2016): one Gram matrix per semantic region.

Style region r's Gram is matched to the synthesis' region r Gram, so each region takes the texture statistics of
its counterpart: a cheaper guided alternative to the patch MRF loss (no nearest-neighbour search).
fast-neural-doodle divides each masked Gram by the whole layer area; here it is divided by the region's own area
(the mean of its squared mask), so a region's Gram is comparable between a style and a target of different
region sizes.

Shapes: features ``(1, C, h, w)``; masks ``(1, K, H, W)`` (pooled to each layer); Grams ``(K, C, C)``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.semantic import masks_at
from .base import layer_weights
from .gram import gram_loss, gram_matrix

MIN_AREA = 1e-3  # a region covering less of a layer than this has no meaningful Gram there


def masked_grams(features: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-region Grams of ``(1, C, h, w)`` features under ``(1, K, h, w)`` masks: ``(grams (K, C, C), area (K,))``.

    ``gram_matrix(F·m_r) / mean(m_r²)``: the Gram of the region's features averaged over the region. Memory is
    K times the layer's activation (the masked copies are batched through :func:`gram_matrix`); with no more
    channels than regions (the pixels' colours), the C² channel products weighted by the squared masks instead,
    C/K of that (at 512 px the doodle's colour term takes half the time, forward and backward).
    """
    area = masks[0].float().pow(2).mean(dim=(1, 2))  # (K,)
    _, c, h, w = features.shape
    k = masks.shape[1]
    if c <= k:
        flat = features.reshape(c, h * w)
        products = (flat[:, None] * flat[None]).reshape(c * c, h * w)  # (C², h·w)
        grams = (masks.reshape(k, h * w).to(features.dtype).square() @ products.t()).view(k, c, c) / (h * w)
    else:
        grams = gram_matrix(features * masks.transpose(0, 1).to(features.dtype))  # (K, C, h, w) masked copies
    return grams / area.clamp_min(MIN_AREA).view(-1, 1, 1), area


class MaskedGramLoss(nn.Module):
    """Σ_l w_l · mean over shared regions r of ``gram_loss(G_r(x), G_r(s))``.

    Call :meth:`set_style` with the style features and masks, :meth:`set_target_masks` with the target masks
    (same channel order, e.g. from :func:`semstyle.semantic.semantic_masks`). Regions absent from the style or
    the target at a layer are skipped there.
    """

    def __init__(self, layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"), weights=None):
        super().__init__()
        self.weights = layer_weights(layers, weights)
        self.layers = tuple(self.weights)
        self.targets: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.target_masks: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def set_style(self, features: dict[str, torch.Tensor], masks: torch.Tensor) -> None:
        """Style features ``{layer: (1, C, h, w)}`` and image-resolution masks ``(1, K, H, W)``."""
        self.targets = {
            layer: masked_grams(
                features[layer].detach().float(),
                masks_at(masks.float().to(features[layer].device), features[layer].shape[-2:]),
            )
            for layer in self.layers
        }

    def set_target_masks(self, masks: torch.Tensor) -> None:
        """Target masks ``(1, K, H, W)`` at image resolution; pooled to each layer on use."""
        self.target_masks = {"image": masks.float()}

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        if not self.targets or not self.target_masks:
            raise RuntimeError("MaskedGramLoss: set_style() and set_target_masks() must be called first")
        total = 0.0
        for layer, weight in self.weights.items():
            feature = features[layer]
            masks = self.target_masks.get(layer)
            if masks is None or masks.shape[-2:] != feature.shape[-2:]:
                masks = self.target_masks[layer] = masks_at(self.target_masks["image"], feature.shape[-2:]).to(
                    feature.device
                )
            style_grams, style_area = self.targets[layer]
            grams, area = masked_grams(feature, masks)
            shared = (area > MIN_AREA) & (style_area > MIN_AREA)
            if shared.any():
                total = total + weight * gram_loss(grams[shared], style_grams[shared])
        return total
