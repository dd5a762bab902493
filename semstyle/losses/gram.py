"""Gram-matrix style loss (Gatys, Ecker & Bethge 2016, eqs. 3-5)."""

from __future__ import annotations

import torch

from .base import LayerLoss


class _SymmetricGram(torch.autograd.Function):
    """``Fᵀ F`` for ``F`` of shape ``(B, M, C)``, with a one-matmul backward ``dF = F (g + gᵀ)``.

    Autograd's generic backward of a product does two matmuls; the Gram's symmetry needs one. The Gram loss is
    the largest cost of a Gatys step after the VGG pass itself, so this matters.

    ``dF`` comes back in the memory layout of ``F``: for the transposed view of a contiguous ``(B, C, M)`` (the
    channels-first features of NNPACK's fp32 path) it is computed as ``((g + gᵀ) Fᵀ)ᵀ``, the same numbers, so that
    the encoder's backward does not first copy a transposed 50 MB gradient at conv1_1 (512 px: 80 ms a step).
    """

    @staticmethod
    def forward(ctx, flat):
        ctx.save_for_backward(flat)
        return flat.transpose(1, 2) @ flat

    @staticmethod
    def backward(ctx, grad):
        (flat,) = ctx.saved_tensors
        sym = grad + grad.transpose(1, 2)
        if not flat.is_contiguous() and flat.transpose(1, 2).is_contiguous():
            return (sym @ flat.transpose(1, 2)).transpose(1, 2)
        return flat @ sym


def symmetric_gram(flat: torch.Tensor) -> torch.Tensor:
    """``Fᵀ F`` of ``(B, M, C)`` -> ``(B, C, C)``, differentiable with a one-matmul backward."""
    return _SymmetricGram.apply(flat)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix ``F Fᵀ / M`` of ``(B, C, h, w)`` features, ``M = h·w``; returns ``(B, C, C)``.

    Dividing by M makes Grams of images of different sizes comparable (multi-style, multi-scale).
    """
    b, c, h, w = features.shape
    if features.is_contiguous(memory_format=torch.channels_last):
        # (B, H, W, C) in memory: a free view; reshaping to (B, C, HW) would copy, and so would its gradient
        flat = features.permute(0, 2, 3, 1).reshape(b, h * w, c)
    else:
        flat = features.reshape(b, c, h * w).transpose(1, 2)
    return symmetric_gram(flat) / (h * w)


def gram_loss(gram: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gatys eq. 4 on size-normalised Grams: ``Σ(G − A)² / (4N²)``, i.e. ``1/(4N²M²) Σ(G_raw − A_raw)²``.

    ``gram`` is ``(B, N, N)``; ``target`` broadcasts against it. Averaged over the batch.
    """
    n = gram.shape[-1]
    return (gram - target).pow(2).sum(dim=(-2, -1)).mean() / (4 * n * n)


class GramLoss(LayerLoss):
    """Style loss Σ_l w_l E_l over ``layers`` (default Gatys: conv1_1 ... conv5_1, w_l = 1/5)."""

    def __init__(self, layers=("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"), weights=None):
        super().__init__(layers, weights)

    def target_of(self, feature):
        return gram_matrix(feature.detach())

    def layer_loss(self, feature, target):
        return gram_loss(gram_matrix(feature), target)
