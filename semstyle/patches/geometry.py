"""Patch geometry: k×k patches of channels-last features as rows in ``(ky, kx, c)`` order (k² strided copies, which
read memory in order: ``F.unfold`` on channels-last features costs more than the GEMM itself), their overlay back
onto a map, normalised rows for NCC, and an index of where each style patch lies across CNNMRF's style copies."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

EPS = 1e-8


def patch_grid(size, patch_size: int, stride: int) -> tuple[int, int]:
    """Number of patch positions ``(h', w')`` along each side of a ``size`` ``(h, w)`` map."""
    return tuple((n - patch_size) // stride + 1 for n in size)


def _positions(offset: int, count: int, stride: int) -> slice:
    """The ``count`` positions ``offset, offset + stride, ...`` along one side: where a patch's cell ``offset``
    lies for each of ``count`` patches at ``stride``."""
    return slice(offset, offset + stride * (count - 1) + 1, stride)


def extract_patches(
    features: torch.Tensor,
    patch_size: int = 3,
    stride: int = 1,
    dtype: torch.dtype | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """All ``patch_size``² patches of ``(1, C, h, w)`` at ``stride`` as rows ``(L, k·k·C)``, row-major positions,
    each row in ``(ky, kx, c)`` order. ``out``: an ``(L, ≥k·k·C)`` buffer whose first k·k·C columns are written."""
    x = features[0].permute(1, 2, 0)  # (h, w, C): a free view of channels-last memory
    k = patch_size
    (hp, wp), c = patch_grid(x.shape[:2], k, stride), x.shape[2]
    if out is None:
        out = torch.empty(hp * wp, k * k * c, dtype=dtype or features.dtype, device=features.device)
    grid = out[:, : k * k * c].view(hp, wp, k, k, c)
    for dy in range(k):  # k² strided copies, each over every position at once
        for dx in range(k):
            grid[:, :, dy, dx] = x[_positions(dy, hp, stride), _positions(dx, wp, stride)]
    return out


def overlay_patches(rows: torch.Tensor, size, patch_size: int = 3, stride: int = 1) -> torch.Tensor:
    """Sum of patch rows ``(L, k·k·C)`` put back at their positions (the adjoint of :func:`extract_patches`, i.e.
    ``F.fold``): ``(1, C, h, w)`` float32, channels-last."""
    h, w = size
    k = patch_size
    hp, wp = patch_grid(size, k, stride)
    c = rows.shape[1] // (k * k)
    out = torch.zeros(h, w, c, device=rows.device)
    grid = rows.view(hp, wp, k, k, c)
    for dy in range(k):
        for dx in range(k):
            out[_positions(dy, hp, stride), _positions(dx, wp, stride)] += grid[:, :, dy, dx]
    return out.permute(2, 0, 1)[None]


def patch_norms(features: torch.Tensor, patch_size: int = 3, stride: int = 1) -> torch.Tensor:
    """L2 norm of every patch of ``(1, C, h, w)``: ``(h'·w',)`` float32, row-major positions."""
    square = torch.linalg.vector_norm(features.float(), dim=1, keepdim=True).square()  # one pass, no (C, h, w) copy
    return (F.avg_pool2d(square, patch_size, stride=stride) * patch_size**2).clamp_min(0).sqrt().flatten()


def ncc_patches(
    features: torch.Tensor,
    patch_size: int = 3,
    stride: int = 1,
    masks: torch.Tensor | None = None,
    mask_scale: float | None = None,
    dtype: torch.dtype = torch.float32,
    out: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Patches as rows for the normalised cross-correlation search: ``(rows (L, D), feature norms (L,))``.

    Style rows (``mask_scale=None``): the feature patch divided by its L2 norm, then (with ``masks`` ``(1, K, h, w)``,
    or their :func:`mask_rows`) the mask patch divided by its own norm and a constant 1: ``D = k·k·C (+ k·k·K + 1)``.

    Synthesis rows (``mask_scale`` = the semantic weight w) are left unnormalised: scaling a synthesis row by a
    positive number does not change which style row scores best, so the feature part is the raw patch and the mask
    part is the normalised mask patch times w·‖x_i‖, with a constant −w·‖x_i‖. A dot product with a style row is
    then ``‖x_i‖ · (NCC(features) + w · (NCC(masks) − 1))``: neural-doodle's score minus w (so a patch matched inside
    its own region scores in [−1, 1] and keeps bf16's ~3 significant digits), times ‖x_i‖.

    ``out`` ``(L, D)``: a buffer of ``dtype`` to write the rows into (reused between calls).
    """
    norms = patch_norms(features, patch_size, stride)
    ck2 = features.shape[1] * patch_size**2
    unit = None if masks is None else masks if masks.dim() == 2 else mask_rows(masks, patch_size, stride)
    if out is None:
        extra = 0 if unit is None else unit.shape[1] + 1
        out = torch.empty(len(norms), ck2 + extra, dtype=dtype, device=features.device)
    rows = extract_patches(features.detach(), patch_size, stride, out=out)
    style = mask_scale is None
    if style:
        rows[:, :ck2].mul_((1.0 / norms.clamp_min(EPS))[:, None].to(dtype))
    if unit is not None:
        # an all-zero synthesis patch (common in ReLU maps) still gets a positive mask part: the map decides
        scale = torch.ones_like(norms) if style else float(mask_scale) * norms.clamp_min(EPS)
        torch.mul(unit, scale[:, None], out=rows[:, ck2:-1])
        rows[:, -1] = scale if style else -scale
    return rows, norms


def mask_rows(masks: torch.Tensor, patch_size: int = 3, stride: int = 1) -> torch.Tensor:
    """The L2-normalised patch rows of masks ``(1, K, h, w)``: ``(L, k·k·K)`` float32."""
    rows = extract_patches(masks.float().contiguous(memory_format=torch.channels_last), patch_size, stride)
    return rows / rows.norm(dim=1, keepdim=True).clamp_min(EPS)


class PatchIndex(NamedTuple):
    """Where each style patch (row) lies, over the style copies' features stacked as pixel rows ``(P, C)``:
    ``origin`` ``(N,)`` the pixel row of its top-left corner, ``width`` ``(N,)`` its copy's width in pixels (so
    offset (dy, dx) of the patch is pixel ``origin + dy·width + dx``); ``y``, ``x`` ``(N,)`` its place in its copy's
    patch grid of ``grid_h`` × ``grid_w`` ``(N,)`` cells numbered from ``cell0`` ``(N,)``; ``row_of_cell``
    ``(cells,)`` the row of each cell, −1 where the patch was dropped (rotated copies' empty corners)."""

    origin: torch.Tensor
    width: torch.Tensor
    y: torch.Tensor
    x: torch.Tensor
    grid_h: torch.Tensor
    grid_w: torch.Tensor
    cell0: torch.Tensor
    row_of_cell: torch.Tensor


def patch_index(sizes, patch_size: int, stride: int, keep: list[torch.Tensor | None], device=None) -> PatchIndex:
    """The :class:`PatchIndex` of the patches of feature maps of ``sizes`` ``[(h, w)]`` (stacked in that order) at
    ``stride``; ``keep`` (one ``(cells,)`` bool or None per map) drops patches as :meth:`MRFLoss.set_target` does."""
    parts, pixel0, cell0 = [], 0, 0
    for (h, w), ok in zip(sizes, keep):
        gh, gw = patch_grid((h, w), patch_size, stride)
        y, x = (
            t.flatten()
            for t in torch.meshgrid(torch.arange(gh, device=device), torch.arange(gw, device=device), indexing="ij")
        )
        fields = [
            pixel0 + y * stride * w + x * stride,
            torch.full_like(y, w),
            y,
            x,
            torch.full_like(y, gh),
            torch.full_like(y, gw),
            torch.full_like(y, cell0),
        ]
        parts.append([f if ok is None else f[ok] for f in fields])
        pixel0, cell0 = pixel0 + h * w, cell0 + gh * gw
    origin, width, y, x, grid_h, grid_w, first = (torch.cat(column) for column in zip(*parts))
    row_of_cell = torch.full((cell0,), -1, dtype=torch.long, device=device)
    row_of_cell[first + y * grid_w + x] = torch.arange(len(origin), device=device)
    return PatchIndex(origin, width, y, x, grid_h, grid_w, first, row_of_cell)


def overlay_style_patches(
    style_pixels: torch.Tensor, index: PatchIndex, rows: torch.Tensor, size, patch_size: int = 3, stride: int = 1
) -> torch.Tensor:
    """The overlay (:func:`overlay_patches`) of style patches ``rows`` ``(L,)`` at the synthesis patch positions of a
    ``size`` ``(h, w)`` map, read straight from the style features ``style_pixels`` ``(P + 1, C)`` (pixel rows, the
    last one zero) instead of from a copy of every patch: ``(1, C, h, w)`` channels-last.

    Each synthesis position sums the k² style pixels that the patches over it put there: one ``embedding_bag`` over a
    ``(h·w, k²)`` table of pixel rows (the zero row where fewer patches cover it), with no ``(L, k·k·C)`` copy.
    """
    h, w = size
    k = patch_size
    hp, wp = patch_grid(size, k, stride)
    origin, width = index.origin[rows].view(hp, wp), index.width[rows].view(hp, wp)
    table = torch.full((h, w, k, k), len(style_pixels) - 1, dtype=torch.long, device=rows.device)
    for dy in range(k):
        for dx in range(k):
            table[_positions(dy, hp, stride), _positions(dx, wp, stride), dy, dx] = origin + (dy * width + dx)
    summed = F.embedding_bag(table.view(h * w, k * k), style_pixels, mode="sum")  # (h·w, C)
    return summed.view(h, w, -1).permute(2, 0, 1)[None]


def shift_patches(rows: torch.Tensor, dy, dx, index: PatchIndex, fallback: torch.Tensor) -> torch.Tensor:
    """The style patch ``(dy, dx)`` grid cells away from each of ``rows`` (any shape; ``dy``, ``dx`` ints or
    tensors of that shape) in the same copy, or ``fallback`` where that cell is outside the copy or dropped."""
    y, x = index.y[rows] + dy, index.x[rows] + dx
    gh, gw = index.grid_h[rows], index.grid_w[rows]
    inside = (y >= 0) & (y < gh) & (x >= 0) & (x < gw)
    cell = index.cell0[rows] + y.clamp(min=0).minimum(gh - 1) * gw + x.clamp(min=0).minimum(gw - 1)
    shifted = index.row_of_cell[cell]
    return torch.where(inside & (shifted >= 0), shifted, fallback)
