"""A weighted sum of loss terms sharing one encoder pass.

A method builds an :class:`Objective` from named terms, sets each term's target from ``objective.features(...)``
of its target image, then optimises ``objective(image)``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.encoder import LAYER_NAMES, VGG19Encoder


class Objective(nn.Module):
    """``total = Σ weight_k · term_k(features)`` with one encoder pass for the union of the terms' layers.

    Args:
        encoder: the shared :class:`VGG19Encoder`.
        terms: ``{name: (loss_module, weight)}``; terms of weight 0 are dropped.
    """

    def __init__(self, encoder: VGG19Encoder, terms: dict[str, tuple[nn.Module, float]]):
        super().__init__()
        self.encoder = encoder
        active = {name: (module, float(weight)) for name, (module, weight) in terms.items() if weight != 0}
        self.terms = nn.ModuleDict({name: module for name, (module, _) in active.items()})
        self.weights = {name: weight for name, (_, weight) in active.items()}

    @property
    def layers(self) -> list[str]:
        wanted = {layer for module in self.terms.values() for layer in getattr(module, "layers", ())}
        return [layer for layer in LAYER_NAMES if layer in wanted]

    def features(self, image: torch.Tensor, layers=None) -> dict[str, torch.Tensor]:
        """Encoder features of ``image`` for every term's layers (or ``layers``), plus ``"image"`` itself."""
        layers = self.layers if layers is None else layers
        feats = self.encoder(image, layers) if layers else {}
        feats["image"] = image
        return feats

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Returns the total loss (a scalar with grad) and each weighted term as a float, for logging."""
        feats = self.features(image)
        values = {name: self.weights[name] * module(feats) for name, module in self.terms.items()}
        total = sum(values.values())
        return total, {name: float(value.detach()) for name, value in values.items()}
