"""NNPACK's fast 3×3 convolutions for the frozen VGG-19 encoder, fp32 on the CPU.

Why: on a CPU without bf16 units the encoder's direct convolutions already run near the fp32 GEMM limit, so the
only way to a faster pass is fewer FLOPs for the same function. NNPACK (Dukhan et al., Facebook, 2016) computes a
3×3 convolution with Winograd's minimal filtering F(6×6, 3×3) (Lavin & Gray, *Fast Algorithms for Convolutional
Neural Networks*, CVPR 2016, Sec. 4): 8×8 input tiles give 6×6 outputs with 64 multiplications per channel pair
instead of 324, and its kernels are AVX2 + FMA3, so they run the same on an AVX2 CPU and on one with AVX-512.
Measured on the 2-core AMD EPYC with avx512_bf16 (docs/benchmarks.md, *Fewer FLOPs per pass*): a bare VGG-19
forward+backward to relu5_1 at 512x384 takes 0.84-0.85 s against 1.38-1.44 s with oneDNN's channels-last
convolutions (AVX-512 or AVX2 kernels), and the demo 0.63 of its time.

Which code: PyTorch's CPU wheels ship NNPACK inside ``libtorch_cpu``, with its C API (``nnpack.h``) exported. PyTorch
itself routes a convolution to it only for batches of 16 and more (ATen's ``use_nnpack``), and then transforms the
whole kernel into Winograd's domain on every call, a fixed cost of C_in x C_out 8x8 tiles (64 MiB at 512 channels)
that took 19 of the 43 ms of a 512-channel layer at 48x64 positions. The encoder's weights are frozen, so this
module calls ``nnp_convolution_inference`` through :mod:`ctypes` with NNPACK's own *precompute* / *reuse* strategy:
each kernel is transformed once per process, and each call reads the transformed kernel. That layer then takes 30
ms, one at 24x32 positions 10 ms instead of 30 (27 ms natively), and NNPACK beats the native convolution from about
128 positions instead of 1024 (docs/benchmarks.md, *NNPACK's kernels transformed once*). The cost is memory: the
transforms of VGG-19 up to conv5_1 take 0.34 GiB, twice that once a backward pass has run. One call per image: its
inference path is for batch 1, and its batched path (its training algorithm) measured 1.3-2.5x slower than a loop
over images. The input gradient of a stride-1, padding-1 convolution is the convolution of the output gradient with
the kernel flipped in space and with input and output channels swapped, which gets its own transform. No weight
gradient is computed.

Why ctypes and not a compiled extension: the project installs from wheels with no compiler, and this library is the
one PyTorch already loaded. It is a private dependency all the same: torch is pinned (setup.cfg), and
:func:`nnpack_ready` checks the call against ``F.conv2d`` once per process before the encoder uses it, so a build
without NNPACK, or with another ABI, falls back to the native convolutions.

Accuracy: Winograd transforms round differently from a direct sum. Against a float64 reference, the encoder's
features at relu5_1 differ by 3e-6 of their largest value, and the image gradient of a relu5_1 loss by 1e-3 of its
norm (direct fp32: 2e-4; bf16 is far coarser). ``tests/core/test_nnpack.py`` holds these bounds.

Threads: NNPACK runs on a pthreadpool of its own, one per process and thread count, created with
``torch.get_num_threads()`` threads at the first call that needs it (a forked child makes its own: a pool's threads
do not survive ``fork``).
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
import weakref
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

# Below these, a layer runs faster on PyTorch's own convolution: too few tiles to amortise a transform, and a 3-channel
# input has too few products. Measured per layer (forward, transformed kernels), VGG-19's shapes from 16 to 1024
# positions, 2 threads, on the AVX2-only AMD EPYC (Zen 3): NNPACK is 0.4-1.0x as fast at 16-64 positions, 1.0-1.3x
# at 64, 1.4-2.6x from 192 up (docs/benchmarks.md, *NNPACK's kernels transformed once*).
MIN_POSITIONS = 128
MIN_IN_CHANNELS = 16

# nnpack.h (Maratyszcza/NNPACK, the version PyTorch vendors): Winograd F(6x6, 3x3), the algorithm NNPACK picks for
# a 3x3 stride-1 kernel; the transform strategies; nnp_status_success; nnp_activation_identity and _relu
_WT8X8, _PRECOMPUTE, _REUSE, _SUCCESS, _IDENTITY, _RELU = 3, 2, 3, 0, 0, 1


class _Size(ctypes.Structure):
    _fields_ = [("width", ctypes.c_size_t), ("height", ctypes.c_size_t)]


class _Padding(ctypes.Structure):
    _fields_ = [(side, ctypes.c_size_t) for side in ("top", "right", "bottom", "left")]


def worth_it(in_channels: int, height: int, width: int) -> bool:
    """Whether NNPACK beats the native convolution on a ``(B, in_channels, height, width)`` input."""
    return in_channels >= MIN_IN_CHANNELS and height * width >= MIN_POSITIONS


class _Library:
    """``nnp_convolution_inference`` in torch's ``libtorch_cpu``, with a thread pool per process and thread count."""

    def __init__(self):
        found = sorted((Path(torch.__file__).parent / "lib").glob("libtorch_cpu.*"))
        if not found:
            raise OSError("no libtorch_cpu in this torch")
        lib = ctypes.CDLL(str(found[0]))
        size_t, pointer = ctypes.c_size_t, ctypes.c_void_p
        self._inference = lib.nnp_convolution_inference
        self._inference.restype = ctypes.c_int
        self._inference.argtypes = [
            *(ctypes.c_int, ctypes.c_int, size_t, size_t),  # algorithm, strategy, input / output channels
            *(_Size, _Padding, _Size, _Size),  # input size, padding, kernel size, output subsampling
            *(pointer, pointer, pointer, pointer),  # input, kernel, bias, output
            *(pointer, ctypes.POINTER(size_t)),  # workspace buffer and size
            *(ctypes.c_int, pointer, pointer, pointer),  # activation, its parameters, thread pool, profile
        ]
        self._create_pool = lib.pthreadpool_create
        self._create_pool.argtypes, self._create_pool.restype = [size_t], pointer
        if lib.nnp_initialize() != _SUCCESS:
            raise OSError("nnp_initialize failed: NNPACK does not support this CPU")
        self._pools: dict[tuple[int, int], int] = {}
        self._local = threading.local()  # each thread's workspace

    def _pool(self) -> int:
        key = (os.getpid(), torch.get_num_threads())
        if key not in self._pools:
            self._pools[key] = self._create_pool(key[1])
        return self._pools[key]

    def _call(self, strategy, channels, size, image, kernel, bias, out, workspace, workspace_size, relu=False):
        status = self._inference(
            _WT8X8, strategy, *channels, _Size(size[1], size[0]), _Padding(1, 1, 1, 1), _Size(3, 3), _Size(1, 1),
            image, kernel, bias, out, workspace, ctypes.byref(workspace_size), _RELU if relu else _IDENTITY, None,
            self._pool(), None,
        )  # fmt: skip
        if status != _SUCCESS:
            raise RuntimeError(f"NNPACK's convolution failed with status {status} (nnpack.h: enum nnp_status)")

    def transform(self, kernel: torch.Tensor) -> torch.Tensor:
        """``(C_out, C_in, 3, 3)`` -> the kernel in NNPACK's Winograd domain and blocking, as bytes."""
        kernel = kernel.detach().float().contiguous()
        channels, nbytes = (kernel.shape[1], kernel.shape[0]), ctypes.c_size_t(0)
        self._call(_PRECOMPUTE, channels, (8, 8), None, None, None, None, None, nbytes)
        out = torch.empty(nbytes.value, dtype=torch.uint8)
        self._call(_PRECOMPUTE, channels, (8, 8), None, kernel.data_ptr(), None, None, out.data_ptr(), nbytes)
        return out

    def convolve(
        self, image: torch.Tensor, transformed: torch.Tensor, bias: torch.Tensor, out: torch.Tensor, relu=False
    ):
        """``(1, C_in, H, W)`` contiguous float32 convolved with a :meth:`transform` into ``out`` ``(1, C_out, H, W)``,
        contiguous; ``bias`` ``(C_out,)``; ``relu``: NNPACK applies the ReLU as it writes the output."""
        channels, size, nbytes = (image.shape[1], bias.shape[0]), image.shape[2:], ctypes.c_size_t(0)
        self._call(_REUSE, channels, size, None, None, None, None, None, nbytes)
        workspace = getattr(self._local, "workspace", None)
        if workspace is None or workspace.numel() < nbytes.value:
            # kept between calls, as ATen keeps its NNPACK workspace: fresh pages would be zeroed by the kernel
            workspace = self._local.workspace = torch.empty(nbytes.value, dtype=torch.uint8)
        self._call(
            _REUSE, channels, size, image.data_ptr(), transformed.data_ptr(), bias.data_ptr(), out.data_ptr(),
            workspace.data_ptr(), nbytes, relu,
        )  # fmt: skip


@functools.lru_cache(maxsize=1)
def _library() -> _Library | None:
    """NNPACK's C API where it loads and agrees with ``F.conv2d`` (and its ReLU with ``F.relu``) on a small
    convolution, else None."""
    try:
        lib = _Library()
        gen = torch.Generator().manual_seed(0)
        x, w, b = torch.randn(1, 5, 9, 11, generator=gen), torch.randn(4, 5, 3, 3, generator=gen), torch.zeros(4)
        got, got_relu = torch.empty(1, 4, 9, 11), torch.empty(1, 4, 9, 11)
        transformed = lib.transform(w)
        lib.convolve(x, transformed, b, got)
        lib.convolve(x, transformed, b, got_relu, relu=True)
    except (OSError, AttributeError, RuntimeError):
        return None
    want = F.conv2d(x, w, padding=1)
    agree = (got - want).abs().max() <= 1e-4 * want.abs().max() and torch.equal(got_relu, F.relu(got))
    return lib if bool(agree) else None


def nnpack_ready() -> bool:
    """Whether NNPACK's convolution is built into this torch, loads, and agrees with ``F.conv2d``."""
    return _library() is not None


# (id of a frozen kernel, whether flipped for the input gradient) -> (the kernel's version, its transform);
# an entry goes with its kernel
_TRANSFORMS: dict[tuple[int, bool], tuple[int, torch.Tensor]] = {}
_ZEROS: dict[int, torch.Tensor] = {}


def _transformed(lib: _Library, weight: torch.Tensor, flipped: bool) -> torch.Tensor:
    key = (id(weight), flipped)
    hit = _TRANSFORMS.get(key)
    if hit is not None and hit[0] == weight._version:
        return hit[1]
    if hit is None:
        weakref.finalize(weight, _TRANSFORMS.pop, key, None)
    transformed = lib.transform(flip_kernel(weight) if flipped else weight)
    _TRANSFORMS[key] = (weight._version, transformed)
    return transformed


def _forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, flipped: bool = False, relu: bool = False
) -> torch.Tensor:
    """``x`` ``(B, C_in, H, W)`` convolved with ``weight`` (``flipped``: with :func:`flip_kernel` of it), one image at
    a time through NNPACK, then ReLU if ``relu``; channels-first output."""
    lib = _library()
    out_channels = weight.shape[1] if flipped else weight.shape[0]
    if bias is None:
        bias = _ZEROS.get(out_channels)
        if bias is None:
            bias = _ZEROS[out_channels] = torch.zeros(out_channels)
    transformed = _transformed(lib, weight, flipped)
    x = x.float().contiguous()
    out = x.new_empty(x.shape[0], out_channels, *x.shape[2:])
    for image, result in zip(x.split(1), out.split(1)):
        lib.convolve(image, transformed, bias, result, relu)
    return out


class _Conv3x3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, relu):
        out = _forward(x, weight, bias, relu=relu)
        ctx.save_for_backward(weight, out if relu else None)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        weight, out = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        if out is not None:  # ReLU's gradient, the kernel autograd runs for F.relu (one pass over both tensors)
            grad_out = torch.ops.aten.threshold_backward(grad_out, out, 0)
        return _forward(grad_out, weight, None, flipped=True), None, None, None


def flip_kernel(weight: torch.Tensor) -> torch.Tensor:
    """``(C_out, C_in, 3, 3)`` -> ``(C_in, C_out, 3, 3)``, flipped in space: the kernel of the input gradient."""
    return weight.flip(2, 3).transpose(0, 1).contiguous()


def conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, relu: bool = False) -> torch.Tensor:
    """A 3×3 convolution, stride 1, zero padding 1, through NNPACK, with the input gradient through NNPACK too.

    Args:
        x: ``(B, C_in, H, W)`` float32 on the CPU, any memory layout (NNPACK reads it channels-first).
        weight: ``(C_out, C_in, 3, 3)``, frozen: no gradient flows to it or to ``bias``.
        bias: ``(C_out,)`` or None.
        relu: apply ReLU as the output is written, which saves ``F.relu``'s pass over it (and the tensor it
            allocates): the same values and gradient as ``F.relu(conv3x3(x, weight, bias))``.

    Returns:
        ``(B, C_out, H, W)``, channels-first: ``F.conv2d(x, weight, bias, padding=1)`` to ~1e-5 of its largest value.

    Example:
        >>> x, w = torch.randn(1, 4, 7, 9), torch.randn(8, 4, 3, 3)
        >>> if nnpack_ready():
        ...     assert torch.allclose(conv3x3(x, w, None), F.conv2d(x, w, padding=1), atol=1e-4)
    """
    if weight.requires_grad or (bias is not None and bias.requires_grad):
        raise ValueError("conv3x3 computes no weight gradient: pass frozen weights (requires_grad=False)")
    return _Conv3x3.apply(x, weight, bias, relu)
