"""Total-variation regulariser (Mahendran & Vedaldi 2015), as used by Gatys-style methods against high-frequency
noise."""

from __future__ import annotations

import torch

from .base import Loss


def _power_base(d: torch.Tensor, p: float) -> torch.Tensor:
    """``b`` with ``b·d = |d|^p`` and ``p·b = d/dd |d|^p``: d (p = 2), d·|d|^(p−2) (p > 2), sign(d)·|d|^(p−1)."""
    if p == 2:
        return d
    if p > 2:
        return d * (d.abs().sqrt_() if p == 2.5 else d.abs().pow_(p - 2))  # sqrt: ~5x cheaper than pow(0.5)
    return d.sign().mul_(d.abs().pow_(p - 1))


class _TotalVariation(torch.autograd.Function):
    """``mean|Δy|^p + mean|Δx|^p`` with its gradient written out: autograd's chain of sub, abs, pow and mean keeps
    four image-sized intermediates per direction (7.8 ms against 1.9 ms at 512 px, p = 2.5, on 2 cores)."""

    @staticmethod
    def forward(ctx, image, p):
        diffs = torch.diff(image, dim=-2), torch.diff(image, dim=-1)
        bases = [_power_base(d, p) for d in diffs]
        ctx.save_for_backward(*bases)
        ctx.p = p
        return sum(b.reshape(-1).dot(d.reshape(-1)) / d.numel() for b, d in zip(bases, diffs))

    @staticmethod
    def backward(ctx, grad):
        by, bx = ctx.saved_tensors
        out = torch.zeros(by.shape[:-2] + (bx.shape[-2], by.shape[-1]), dtype=by.dtype, device=by.device)
        for b, dim in ((by, -2), (bx, -1)):
            scale = float(ctx.p * grad / b.numel())
            out.narrow(dim, 1, b.shape[dim]).add_(b, alpha=scale)  # each difference is (later − earlier)
            out.narrow(dim, 0, b.shape[dim]).sub_(b, alpha=scale)
        return out, None


def tv_loss(image: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Mean ``|Δx|^p + |Δy|^p`` of neighbouring pixels of ``(B, C, H, W)``; size-normalised.

    ``p=1`` is the anisotropic TV of :func:`kornia.losses.total_variation` (divided by the number of
    differences); ``p=2`` (default) is smooth at zero, which L-BFGS prefers.
    """
    return _TotalVariation.apply(image, float(p))


class TVLoss(Loss):
    """Total variation of the image being optimised (reads ``features["image"]``); it has no target."""

    def __init__(self, p: float = 2.0):
        super().__init__()
        self.p = p

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return tv_loss(features["image"], self.p)
