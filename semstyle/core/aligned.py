"""Matrix products whose output rows start on 64-byte boundaries.

PyTorch's CPU BLAS (MKL's sgemm) writes a float32 output whose row length is not a multiple of 16 floats markedly
slower. STROTSS's hypercolumns have 2179 channels (3 + 64·2 + 128·2 + 256·3 + 512·2, the reference's), and three
of its products end in a 2179-wide output: the covariance ``X_cᵀX_c`` ``(C, C)``, its gradient ``X_c·sign(D)``
``(N, C)`` and the self-similarity's gradient ``(N, C)``. With 2048 samples the first two took 140-143 ms
each; written into rows padded to 2192 floats, 99-100 ms (the 2-core AMD EPYC, fp32, AVX2 and AVX-512 kernels
alike; ``benchmarks/bench_aligned.py``). Only the output's row stride matters: padded inputs alone do not help.

:func:`mm` and :func:`addmm` return the ``(M, N)`` view of such a padded buffer: the same numbers, a row stride of
``N`` rounded up to :data:`ALIGN`. They are for products autograd does not record (a custom Function's forward
and backward). Where autograd computes the gradient, :func:`pad_columns` widens the set itself with zero columns,
which change no dot product. Elsewhere (other dtypes, GPUs, widths already aligned) all three change nothing.
"""

from __future__ import annotations

import torch

ALIGN = 16  # floats: 64 bytes, an AVX-512 register and a cache line


def _helps(like: torch.Tensor, cols: int) -> bool:
    return like.device.type == "cpu" and like.dtype == torch.float32 and cols % ALIGN != 0


def _padded_out(rows: int, cols: int, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor | None:
    """An uninitialised ``(rows, cols)`` view with an aligned row stride, or None where the plain product is used."""
    if not _helps(a, cols) or (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad)):
        return None  # out= cannot be differentiated
    stride = -(-cols // ALIGN) * ALIGN
    return torch.empty(rows, stride, dtype=a.dtype, device=a.device)[:, :cols]


def pad_columns(x: torch.Tensor) -> torch.Tensor:
    """``(N, C)`` -> ``(N, C')`` with zero columns up to an aligned width ``C'`` (differentiable), where that helps.

    >>> pad_columns(torch.ones(2, 3)).shape
    torch.Size([2, 16])
    """
    if not _helps(x, x.shape[1]):
        return x
    return torch.nn.functional.pad(x, (0, -x.shape[1] % ALIGN))


def mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for ``(M, K)`` and ``(K, N)``; returns ``(M, N)``, rows padded to :data:`ALIGN` in memory.

    >>> a, b = torch.randn(5, 3), torch.randn(3, 7)
    >>> out = mm(a, b)
    >>> out.shape, out.stride(), torch.allclose(out, a @ b)
    (torch.Size([5, 7]), (16, 1), True)
    """
    out = _padded_out(a.shape[0], b.shape[1], a, b)
    return a @ b if out is None else torch.mm(a, b, out=out)


def addmm(c: torch.Tensor, a: torch.Tensor, b: torch.Tensor, beta: float = 1.0, alpha: float = 1.0) -> torch.Tensor:
    """``beta·c + alpha·(a @ b)``, as :func:`torch.addmm`; returns ``(M, N)`` with rows padded as :func:`mm`."""
    out = _padded_out(a.shape[0], b.shape[1], a, b)
    if out is None:
        return torch.addmm(c, a, b, beta=beta, alpha=alpha)
    return torch.addmm(c, a, b, beta=beta, alpha=alpha, out=out)
