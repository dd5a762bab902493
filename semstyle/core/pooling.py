"""2×2 average pooling for the encoder: ATen's values, in a third of its time on channels-first maps.

Why: for channels-first (NCHW) maps ATen's ``avg_pool2d`` runs a generic window loop, and its backward zero-fills
the input gradient before adding each output gradient into its window. A 2×2 window with stride 2 needs neither:
the forward is two strided sums (rows, then columns), and the backward gives every input position a quarter of
one output gradient, a nearest-neighbour upsampling of ``g / 4`` written once. Measured at 64 × 384 × 512 (pool1
at 512x384) on the 2-core AMD EPYC with AVX2 kernels, fp32: forward 14-20 ms -> 4-5 ms, backward 14.7 -> 6.1 ms;
over the four pools of a VGG-19 pass about 30 ms, 4 % of a fp32 pass with NNPACK (docs/benchmarks.md, *Memory the
kernel zeroes every step*). Channels-last maps (the bf16 path) keep ATen's forward, which is fast there (1-2 ms),
and take the one-write backward (ATen's 8 ms -> 2.5-6 ms with the forward).

Gatys et al. (2016, Sec. 2) replace VGG's max pooling with this average pooling for smoother gradients. The sums
round differently from ATen's (within 2.4e-7 relative in fp32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


def _channels_last(x: torch.Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


class _AvgPool2x2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        if min(x.shape[-2:]) < 2:  # as F.avg_pool2d: no window fits
            raise RuntimeError(f"avg_pool2x2: a {x.shape[-2]}x{x.shape[-1]} map is too small for a 2x2 window")
        ctx.input_size = x.shape[-2:]
        ctx.memory_format = torch.channels_last if _channels_last(x) else torch.contiguous_format
        if ctx.memory_format == torch.channels_last:
            return F.avg_pool2d(x, 2)
        height, width = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2  # floor mode: an odd last row/column is dropped
        rows = x[:, :, 0:height:2, :width] + x[:, :, 1:height:2, :width]
        return (rows[..., 0::2] + rows[..., 1::2]).mul_(0.25)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        height, width = ctx.input_size
        grad_input = F.interpolate(grad * 0.25, scale_factor=2, mode="nearest")
        if height % 2 or width % 2:  # the dropped row or column was outside every window
            grad_input = F.pad(grad_input, (0, width % 2, 0, height % 2))
        return grad_input.contiguous(memory_format=ctx.memory_format)  # the input's layout, as ATen's backward


def avg_pool2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.avg_pool2d(x, 2)`` of ``(B, C, H, W)`` -> ``(B, C, H // 2, W // 2)``, with a one-write backward.

    >>> avg_pool2x2(torch.arange(16.0).view(1, 1, 4, 4))
    tensor([[[[ 2.5000,  4.5000],
              [10.5000, 12.5000]]]])
    """
    return _AvgPool2x2.apply(x)
