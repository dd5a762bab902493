"""A weighted sum of loss terms sharing one encoder pass, over one image or several named views of it.

A method builds an :class:`Objective` from named terms, sets each term's target from ``objective.features(...)``
of its target image, then optimises ``objective(image)``. Deformable Style Transfer scores two views, the image
``X`` and its warp ``W(X)`` (Kim et al. 2020, eq. 7): ``objective({"image": x, "warped": w})`` encodes both in one
batched pass and hands each term the features of its own view.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import nn

from ..core.encoder import LAYER_NAMES, VGG19Encoder

Weight = float | Mapping[str, float]


class Objective(nn.Module):
    """``total = Σ weight_k · term_k(features of view_k)`` with one encoder pass for all views and layers.

    Args:
        encoder: the shared :class:`VGG19Encoder`.
        terms: ``{name: (loss_module, weight)}`` or ``{name: (loss_module, weight, view)}`` (default view
            ``"image"``); terms of weight 0 are dropped. A *container* term returns ``{sub: value}`` (STROTSS's
            relaxed EMD, moment and colour terms, which share one sample of the image); its weight is then
            ``{sub: weight}`` and each part is logged as ``name.sub``.
        before_step: callables run at the start of every evaluation, before any term (fresh random samples that
            several terms share).

    :attr:`weights` may be changed between scales (STROTSS halves its content weight at each finer scale).
    """

    def __init__(
        self,
        encoder: VGG19Encoder,
        terms: dict[str, tuple],
        before_step: tuple[Callable[[], None], ...] = (),
    ):
        super().__init__()
        self.encoder = encoder
        active = {name: spec for name, spec in terms.items() if not _is_zero(spec[1])}
        self.terms = nn.ModuleDict({name: spec[0] for name, spec in active.items()})
        self.weights: dict[str, Weight] = {name: _weight(spec[1]) for name, spec in active.items()}
        self.views = {name: spec[2] if len(spec) > 2 else "image" for name, spec in active.items()}
        self.before_step = tuple(before_step)

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

    def view_features(self, views: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
        """:meth:`features` of each named view ``(B, 3, H, W)`` (all the same size), from one batched pass."""
        names = [name for name in views if name in set(self.views.values())]
        if len(names) == 1:
            return {names[0]: self.features(views[names[0]])}
        batch = self.features(torch.cat([views[name] for name in names]))
        sizes = [len(views[name]) for name in names]
        split = {layer: f.split(sizes) for layer, f in batch.items()}
        return {name: {layer: parts[i] for layer, parts in split.items()} for i, name in enumerate(names)}

    def forward(self, image: torch.Tensor | dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """The total loss (a scalar with grad) and each weighted term as a float, for logging.

        ``image``: the image ``(B, 3, H, W)``, or ``{view: image}`` for terms bound to views."""
        for hook in self.before_step:
            hook()
        views = image if isinstance(image, dict) else {"image": image}
        feats = self.view_features(views)
        values: dict[str, torch.Tensor] = {}
        for name, module in self.terms.items():
            value, weight = module(feats[self.views[name]]), self.weights[name]
            if isinstance(value, dict):
                values.update({f"{name}.{sub}": weight[sub] * part for sub, part in value.items() if weight[sub]})
            else:
                values[name] = weight * value
        total = sum(values.values())
        return total, {name: float(value.detach()) for name, value in values.items()}


def _weight(weight) -> Weight:
    return {sub: float(w) for sub, w in weight.items()} if isinstance(weight, Mapping) else float(weight)


def _is_zero(weight) -> bool:
    return all(w == 0 for w in weight.values()) if isinstance(weight, Mapping) else weight == 0
