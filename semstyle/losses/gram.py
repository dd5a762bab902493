"""Gram-matrix style loss (Gatys, Ecker & Bethge 2016, eqs. 3-5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import LayerLoss

# above this, the BLAS product is as fast as a 1x1 convolution for the Gram's backward (512 channels: 9.6 against
# 9.8 ms at conv4_1, 512 px; see _SymmetricGram)
CONV1X1_MAX_CHANNELS = 256


class _SymmetricGram(torch.autograd.Function):
    """``Fᵀ F`` for ``F`` of shape ``(B, M, C)``, with a one-matmul backward ``dF = F (g + gᵀ)``.

    Autograd's generic backward of a product does two matmuls; the Gram's symmetry needs one. The Gram loss is
    the largest cost of a Gatys step after the VGG pass itself, so this matters.

    ``dF`` comes back in the memory layout of ``F``: for the transposed view of a contiguous ``(B, C, M)`` (the
    channels-first features of NNPACK's fp32 path) it is computed as ``((g + gᵀ) Fᵀ)ᵀ``, the same numbers, so that
    the encoder's backward does not first copy a transposed 50 MB gradient at conv1_1 (512 px: 80 ms a step).
    On the CPU, up to :data:`CONV1X1_MAX_CHANNELS` channels, that product runs as oneDNN's 1×1 convolution, whose
    kernel suits its shape (C small, M large) better than the BLAS product: on the Zen 3, 2 threads, 16 against
    25 ms at conv1_1 (64 × 196 608) and 13 against 17 ms at conv2_1 at 512 px, the same bits; 1.04-1.06x on a
    whole fp32 Gatys step at 512 px, 1.015x at 256 px (CPU time, interleaved; docs/benchmarks.md).
    """

    @staticmethod
    def forward(ctx, flat):
        ctx.save_for_backward(flat)
        return flat.transpose(1, 2) @ flat

    @staticmethod
    def backward(ctx, grad):
        (flat,) = ctx.saved_tensors
        sym = grad + grad.transpose(1, 2)
        channels_first = flat.transpose(1, 2)
        if flat.is_contiguous() or not channels_first.is_contiguous():
            return flat @ sym
        if flat.device.type == "cpu" and flat.shape[-1] <= CONV1X1_MAX_CHANNELS:
            rows = [F.conv2d(f[None, :, :, None], s[:, :, None, None])[0, :, :, 0] for f, s in zip(channels_first, sym)]
            return torch.stack(rows).transpose(1, 2)
        return (sym @ channels_first).transpose(1, 2)


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
