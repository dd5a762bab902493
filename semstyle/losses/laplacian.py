"""Laplacian loss (Li, Xu, Nie & Chua 2017, "Laplacian-Steered Neural Style Transfer", ACM MM).

``L_lap = Σ_p w_p · mean((D_p(x) − D_p(x_c))²)`` where ``D_p`` is a ``p × p`` average pooling followed by the
4-neighbour Laplacian ``[[0,-1,0],[-1,4,-1],[0,-1,0]]`` summed over R, G and B: it keeps the content's edges and
fine structure that the content loss on a deep layer lets go. Applied, as in the reference ``lap_style.lua``,
without padding ("valid"), so image borders add no spurious edges. A mean rather than the paper's sum, so the
weight does not depend on the image size. Image-space term: reads ``features["image"]`` in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..conf.sizes import check_laplacian_pool
from ..errors import check
from .base import Loss

LAPLACIAN_KERNEL = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])


def laplacian(image: torch.Tensor, pool: int = 1) -> torch.Tensor:
    """``D_p``: ``(B, C, H, W)`` -> ``(B, 1, H//p − 2, W//p − 2)``, the Laplacian of the channel sum of the
    ``p × p``-average-pooled image (the filter is linear, so summing the channels first is the same and 3x cheaper)."""
    check_laplacian_pool(image.shape[-2:], pool)  # before pooling, which fails on a side under `pool`
    if pool > 1:
        image = F.avg_pool2d(image, pool)
    from kornia.filters import filter2d  # here, not at the top: importing kornia is 0.3 s of every process's start-up

    kernel = LAPLACIAN_KERNEL.to(device=image.device, dtype=image.dtype)[None]
    return filter2d(image.sum(dim=1, keepdim=True), kernel, padding="valid")


def laplacian_loss(image: torch.Tensor, target: torch.Tensor, pool: int = 1) -> torch.Tensor:
    """Mean squared difference of ``D_p(image)`` ``(B, 3, H, W)`` and a precomputed ``target = D_p(content)``."""
    return F.mse_loss(laplacian(image, pool), target.expand(image.shape[0], *target.shape[1:]))


class LaplacianLoss(Loss):
    """``Σ_p w_p · laplacian_loss(x, D_p(content), p)`` over ``pool_sizes`` (image-space, ``layers = ()``).

    Args:
        pool_sizes: the ``p`` values (Li et al. 2017 use p = 4, and 4 with 16 combined).
        weights: relative weight per pool size; None = 1 each.
    """

    def __init__(self, pool_sizes=(4, 16), weights=None):
        super().__init__()
        pool_sizes = [int(p) for p in pool_sizes]
        weights = [1.0] * len(pool_sizes) if weights is None else [float(w) for w in weights]
        check(len(pool_sizes) > 0, "laplacian.pool_sizes: give at least one pool size")
        check(all(p >= 1 for p in pool_sizes), f"laplacian.pool_sizes: each must be an integer >= 1, got {pool_sizes}")
        check(
            len(weights) == len(pool_sizes),
            f"laplacian.pool_weights: {len(weights)} weights given for {len(pool_sizes)} pool sizes",
        )
        check(all(w >= 0 for w in weights), f"laplacian.pool_weights: must be >= 0, got {weights}")
        self.weights = dict(zip(pool_sizes, weights))
        self.targets: dict[int, torch.Tensor] = {}

    def set_target(self, features: dict[str, torch.Tensor], masks=None) -> None:
        """Cache ``D_p`` of the content image ``features["image"]`` for every pool size."""
        self._check_masks(masks)
        image = features["image"].detach()
        self.targets = {p: laplacian(image, p) for p in self.weights}

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        if not self.targets:
            raise RuntimeError("LaplacianLoss: set_target() was not called")
        image = features["image"]
        return sum(w * laplacian_loss(image, self.targets[p], p) for p, w in self.weights.items())
