"""NNPACK's fast 3×3 convolutions for the frozen VGG-19 encoder, fp32 on the CPU.

Why: on a CPU without bf16 units the encoder's direct convolutions already run near the fp32 GEMM limit, so the
only way to a faster pass is fewer FLOPs for the same function. NNPACK (Dukhan et al., Facebook, 2016) computes a
3×3 convolution with Winograd's minimal filtering F(6×6, 3×3) (Lavin & Gray, *Fast Algorithms for Convolutional
Neural Networks*, CVPR 2016, Sec. 4): 8×8 input tiles give 6×6 outputs with 64 multiplications per channel pair
instead of 324, and its kernels are AVX2 + FMA3, so they run the same on an AVX2 CPU and on one with AVX-512.
Measured on the 2-core AMD EPYC with avx512_bf16 (docs/benchmarks.md, *Fewer FLOPs per pass*): a bare VGG-19
forward+backward to relu5_1 at 512x384 takes 0.84-0.85 s against 1.38-1.44 s with oneDNN's channels-last
convolutions (AVX-512 or AVX2 kernels), and the demo 0.63 of its time.

Which code: NNPACK ships inside PyTorch's CPU wheels as ``torch._nnpack_spatial_convolution`` (forward only). PyTorch
routes a convolution to it only for batches of 16 and more (ATen's ``use_nnpack``), and the autograd formula of
that op runs the ordinary convolution backward. So this module calls it once per image, in the forward pass and
in the backward pass: the gradient with respect to the input of a stride-1, padding-1 convolution is the
convolution of the output gradient with the kernel flipped in space and with input and output channels swapped.
Per image, because NNPACK's batched path (its training algorithm) measured 1.3-2.5x slower than a loop over images.
The encoder's weights are frozen, so no weight gradient is computed.

Accuracy: Winograd transforms round differently from a direct sum. Against a float64 reference, the encoder's
features at relu5_1 differ by 3e-6 of their largest value, and the image gradient of a relu5_1 loss by 1e-3 of its
norm (direct fp32: 2e-4; bf16 is far coarser). ``tests/core/test_nnpack.py`` holds these bounds.

Threads: NNPACK runs on its own thread pool, which ATen creates at the first NNPACK call with
``torch.get_num_threads()`` threads and never resizes: set the thread count (``OMP_NUM_THREADS`` or
``torch.set_num_threads``) before the first run. Measured: after ``torch.set_num_threads(1)`` following a first call
on 2 threads, the NNPACK pass still took 1.07 s, against 1.29 s when the process started with one thread.

``torch._nnpack_spatial_convolution`` is a private operator: torch is pinned (setup.cfg), and :func:`nnpack_ready`
checks it against ``F.conv2d`` once per process before the encoder uses it, so a build without it, or with a broken
one, falls back to the native convolutions.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

PADDING = [1, 1]
# Below these, a layer runs faster on PyTorch's own convolution: NNPACK transforms the whole kernel on every call
# (a fixed cost of C_in x C_out tiles), and a 3-channel input has too few products to amortise its tiles.
# Measured per layer (fwd + input gradient, then a ReLU), VGG-19's shapes at 64-512 px, 2 threads, on the AMD EPYC
# with avx512_bf16 (docs/benchmarks.md, *Fewer FLOPs per pass*): NNPACK is 0.1-0.95x as fast below 1024 positions,
# 1.0-1.1x at 768, 1.3-2.6x from 1728 up, and 0.6-1.15x on conv1_1.
MIN_POSITIONS = 1024
MIN_IN_CHANNELS = 16


def worth_it(in_channels: int, height: int, width: int) -> bool:
    """Whether NNPACK beats the native convolution on a ``(B, in_channels, height, width)`` input."""
    return in_channels >= MIN_IN_CHANNELS and height * width >= MIN_POSITIONS


@functools.lru_cache(maxsize=1)
def nnpack_ready() -> bool:
    """Whether NNPACK is built into this torch and agrees with ``F.conv2d`` on a small convolution.

    ``torch._nnpack_available()`` also initialises NNPACK: without that call the operator fails.
    """
    available = getattr(torch, "_nnpack_available", None)
    op = getattr(torch, "_nnpack_spatial_convolution", None)
    if available is None or op is None:
        return False
    try:
        if not available():
            return False
        gen = torch.Generator().manual_seed(0)
        x, w = torch.randn(2, 5, 9, 11, generator=gen), torch.randn(4, 5, 3, 3, generator=gen)
        got = _forward(x, w, None)
        want = F.conv2d(x, w, padding=1)
    except RuntimeError:
        return False
    return bool((got - want).abs().max() <= 1e-4 * want.abs().max())


def _forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """NNPACK convolution of ``x`` ``(B, C_in, H, W)``, one image at a time; channels-first output."""
    images = [torch._nnpack_spatial_convolution(image, weight, bias, PADDING) for image in x.contiguous().split(1)]
    return images[0] if len(images) == 1 else torch.cat(images)


class _Conv3x3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(weight)
        return _forward(x, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        (weight,) = ctx.saved_tensors
        # flipped per call rather than kept: a copy of the kernel (at most 9 MB) against a convolution, and no second
        # copy of VGG-19's 80 MB of weights per encoder
        grad_x = _forward(grad_out, flip_kernel(weight), None) if ctx.needs_input_grad[0] else None
        return grad_x, None, None


def flip_kernel(weight: torch.Tensor) -> torch.Tensor:
    """``(C_out, C_in, 3, 3)`` -> ``(C_in, C_out, 3, 3)``, flipped in space: the kernel of the input gradient."""
    return weight.flip(2, 3).transpose(0, 1).contiguous()


def conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 3×3 convolution, stride 1, zero padding 1, through NNPACK, with the input gradient through NNPACK too.

    Args:
        x: ``(B, C_in, H, W)`` float32 on the CPU, any memory layout (NNPACK reads it channels-first).
        weight: ``(C_out, C_in, 3, 3)``, frozen: no gradient flows to it or to ``bias``.
        bias: ``(C_out,)`` or None.

    Returns:
        ``(B, C_out, H, W)``, channels-first: ``F.conv2d(x, weight, bias, padding=1)`` to ~1e-5 of its largest value.

    Example:
        >>> x, w = torch.randn(1, 4, 7, 9), torch.randn(8, 4, 3, 3)
        >>> if nnpack_ready():
        ...     assert torch.allclose(conv3x3(x, w, None), F.conv2d(x, w, padding=1), atol=1e-4)
    """
    if weight.requires_grad or (bias is not None and bias.requires_grad):
        raise ValueError("conv3x3 computes no weight gradient: pass frozen weights (requires_grad=False)")
    return _Conv3x3.apply(x, weight, bias)
