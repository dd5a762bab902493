"""Masked Gram style loss (Ulyanov, "fast-neural-doodle", 2016): one Gram matrix per semantic region.

Style region r's Gram is matched to the synthesis' region r Gram, so each region takes the texture statistics of
its counterpart: a cheaper guided alternative to the patch MRF loss (no nearest-neighbour search).
fast-neural-doodle divides each masked Gram by the whole layer area; here it is divided by the region's own area
(the mean of its squared mask), so a region's Gram is comparable between a style and a target of different
region sizes.

Shapes: features ``(B, C, h, w)``; masks :class:`~semstyle.core.semantic.RegionMasks` of ``(B or 1, K, H, W)``
(pooled to each layer once, by the masks); per-image Grams ``(K, C, C)``.
"""

from __future__ import annotations

import torch

from ..core.semantic import RegionMasks
from ..errors import check
from .base import Loss, layer_weights
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


def _per_image(features: torch.Tensor, masks: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`masked_grams` of each image of a batch ``(B, C, h, w)``, under its own masks or the one set given."""
    check(
        masks.shape[0] in (1, features.shape[0]),
        f"{masks.shape[0]} sets of region masks for a batch of {features.shape[0]} images",
    )
    return [
        masked_grams(features[b : b + 1], masks[b : b + 1] if masks.shape[0] > 1 else masks)
        for b in range(len(features))
    ]


class MaskedGramLoss(Loss):
    """Σ_l w_l · mean over images and shared regions r of ``gram_loss(G_r(x), G_r(s))``.

    :meth:`set_target` takes the style features and the style's region masks, :meth:`set_input_masks` those of the
    image being optimised (same region order, e.g. from :func:`semstyle.core.semantic.semantic_masks`). Regions
    absent from the style or the target at a layer are skipped there. A batch of targets is matched image by
    image; one target serves a whole batch.
    """

    region_wise = True

    def __init__(self, layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"), weights=None):
        super().__init__()
        self.weights = layer_weights(layers, weights)
        self.layers = tuple(self.weights)
        self.targets: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.input_masks: RegionMasks | None = None

    @torch.no_grad()
    def set_target(self, features: dict[str, torch.Tensor], masks: RegionMasks | None = None) -> None:
        """Style features ``{layer: (B, C, h, w)}`` and the style's region masks."""
        check(masks is not None, "MaskedGramLoss: the style's region masks are needed")
        masks = RegionMasks.of(masks)
        self.targets = {}
        for layer in self.layers:
            feature = features[layer].detach().float()
            self.targets[layer] = _per_image(feature, masks.at(feature.shape[-2:], feature.device))

    def set_input_masks(self, masks: RegionMasks | None) -> None:
        self.input_masks = RegionMasks.of(masks)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        if not self.targets or self.input_masks is None:
            raise RuntimeError("MaskedGramLoss: set_target() and set_input_masks() must be called first")
        total = 0.0
        for layer, weight in self.weights.items():
            feature = features[layer]
            targets = self.targets[layer]
            per_image = []
            for b, (grams, area) in enumerate(
                _per_image(feature, self.input_masks.at(feature.shape[-2:], feature.device))
            ):
                style_grams, style_area = targets[b if len(targets) > 1 else 0]
                shared = (area > MIN_AREA) & (style_area > MIN_AREA)
                if shared.any():
                    per_image.append(gram_loss(grams[shared], style_grams[shared]))
            if per_image:  # one image: its loss as it is (a stack and a division would change its last bits)
                loss = per_image[0] if len(feature) == 1 else torch.stack(per_image).sum() / len(feature)
                total = total + weight * loss
        return total
