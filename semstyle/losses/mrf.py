"""Patch-based MRF style loss (Li & Wand 2016, "Combining Markov Random Fields and Convolutional Neural Networks
for Image Synthesis", CNNMRF), with optional semantic channels (Champandard 2016, neural doodle).

For every k×k patch Φ_i(x) of the synthesis features, find the style patch with the highest normalised
cross-correlation (NCC), then pull Φ_i(x) towards it:  E = Σ_i ‖Φ_i(x) − Φ_NN(i)(s)‖²  (eq. 2 of Li & Wand), taken
here as a mean over patch elements (neural-doodle's ``T.mean((patches - best)**2)``) so weights do not depend
on the image size.

The NCC search is one convolution whose filters are the L2-normalised style patches (CNNMRF's ``MRFMM`` layer,
neural-doodle's ``nn`` layers), done as im2col + GEMM and chunked over the style patches so the score block never
exceeds ``chunk_elements`` (default 2^24 scores: 32 MiB in bf16, 64 MiB in fp32). Semantic guidance follows
neural-doodle: the score is ``NCC(features) + semantic_weight · NCC(map channels)``, the NCC of feature and map
patches each normalised on its own; the loss itself reads features only. Since a feature NCC lies in [−1, 1], a
style patch whose map NCC falls more than 2/w below the best one available can never win, so with a map the search
of each group of synthesis patches (:func:`candidate_groups`) only scores the style patches of matching regions:
the same matches for about a third of the GEMM on the Monet and Renoir maps.
Optionally (``match_channels``) the search runs on the leading principal channels of the style features
(:func:`principal_channels`): approximate matches for a GEMM k·k·N instead of k·k·C wide. Optionally
(``search="patchmatch"``) only a phase's first search is exact; every later one is a vectorised PatchMatch step
(:func:`patchmatch_step`) from the previous matches, which the features of one L-BFGS step barely move: a few
candidates per patch instead of every style patch.

Patches are rows in ``(ky, kx, c)`` order, cut from channels-last features with k² strided copies, so building
them and the GEMM read memory in order (``F.unfold`` on channels-last features costs more than the GEMM itself).
The loss reads the matched patches straight from the style features (:func:`overlay_style_patches`, one
``embedding_bag``) rather than from a cached copy of every patch, k² times the features' size.

Shapes: features ``(1, C, h, w)``; masks ``(1, K, h, w)``; patch rows ``(L, k·k·C)``.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .base import layer_weights

CHUNK_ELEMENTS = 1 << 24  # scores per chunk of the NCC search: 16.8 M (32 MiB bf16) -> ~1400 style patches at 512 px
EPS = 1e-8
# below this many scores (synthesis × style patches) the exact search costs less than a PatchMatch step's dozens of
# small operations: relu4_1 of a 256 px doodle (660 × 660) is searched exactly, its relu3_1 (2852 × 2852) is not
PATCHMATCH_MIN_SCORES = 1 << 22


def patch_grid(size, patch_size: int, stride: int) -> tuple[int, int]:
    """Number of patch positions ``(h', w')`` along each side of a ``size`` ``(h, w)`` map."""
    return tuple((n - patch_size) // stride + 1 for n in size)


def _positions(offset: int, count: int, stride: int) -> slice:
    """The ``count`` positions ``offset, offset + stride, ...`` along one side: where a patch's cell ``offset``
    lies for each of ``count`` patches at ``stride``."""
    return slice(offset, offset + stride * (count - 1) + 1, stride)


def extract_patches(features: torch.Tensor, patch_size: int = 3, stride: int = 1, dtype: torch.dtype | None = None,
                    out: torch.Tensor | None = None) -> torch.Tensor:
    """All ``patch_size``² patches of ``(1, C, h, w)`` at ``stride`` as rows ``(L, k·k·C)``, row-major positions,
    each row in ``(ky, kx, c)`` order. ``out``: an ``(L, ≥k·k·C)`` buffer whose first k·k·C columns are written."""
    x = features[0].permute(1, 2, 0)  # (h, w, C): a free view of channels-last memory
    k = patch_size
    (hp, wp), c = patch_grid(x.shape[:2], k, stride), x.shape[2]
    if out is None:
        out = torch.empty(hp * wp, k * k * c, dtype=dtype or features.dtype, device=features.device)
    grid = out[:, :k * k * c].view(hp, wp, k, k, c)
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


def ncc_patches(features: torch.Tensor, patch_size: int = 3, stride: int = 1, masks: torch.Tensor | None = None,
                mask_scale: float | None = None, dtype: torch.dtype = torch.float32,
                out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
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


@torch.no_grad()
def principal_channels(features: list[torch.Tensor], count: int) -> torch.Tensor:
    """The ``count`` leading principal directions of the channel vectors of ``features`` (a list of ``(1, C, h, w)``),
    uncentred (the NCC search compares raw dot products): ``(C, count)`` float32, strongest first.

    Projecting both sides on them turns a patch dot product over k·k·C numbers into one over k·k·count: on the
    relu3_1 and relu4_1 features of the Monet painting, 32 of 256/512 channels keep 80-86 % of the energy, and the
    NCC of the projected patches finds 75-95 % of the exact nearest neighbours; the others are near-ties.
    """
    flats = [f.detach().float().flatten(2)[0] for f in features]  # (C, h·w) each
    gram = sum(flat @ flat.t() for flat in flats)  # (C, C)
    _, vectors = torch.linalg.eigh(gram.double())  # ascending eigenvalues
    return vectors[:, -count:].flip(1).float().contiguous()


def project_channels(features: torch.Tensor, basis: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(1, C, h, w)`` features on ``basis`` ``(C, c)``: ``(1, c, h, w)`` of ``dtype``, channels-last (a GEMM over
    the pixels of the channels-last features, no copy of them). ``dtype``: the GEMM's precision (bfloat16 is 2-3x
    faster with AMX, the cast included)."""
    x = features.detach().contiguous(memory_format=torch.channels_last)[0].permute(1, 2, 0)  # (h, w, C)
    return (x.to(dtype) @ basis.to(dtype)).permute(2, 0, 1)[None]


class PatchGroup(NamedTuple):
    """Synthesis patches ``members`` ``(L_g,)`` whose best match is among the style patches ``candidates``
    ``(N_g,)`` (None: all of them); ``rows``: those candidates' style rows ``(N_g, D)``, copied once."""

    members: torch.Tensor
    candidates: torch.Tensor | None
    rows: torch.Tensor | None


@torch.no_grad()
def candidate_groups(target_units: torch.Tensor, style_units: torch.Tensor, patch_size: int, semantic_weight: float,
                     chunk_elements: int = CHUNK_ELEMENTS, min_share: float = 1 / 32, margin: float = 0.02,
                     min_scores: int = 1 << 21) -> list[tuple[torch.Tensor, torch.Tensor | None]] | None:
    """Groups of synthesis patches, each with the style patches that can still be the best match of one of them.

    ``target_units`` ``(L, k·k·K)`` and ``style_units`` ``(N, k·k·K)`` are :func:`mask_rows`. A score is
    ``‖x_i‖ (F_ij + w (M_ij − 1))`` with the feature NCC F in [−1, 1] and the map NCC M in [0, 1], so style patch j
    can beat the patch of best map NCC only if ``M_ij ≥ max_j M_ij − 2/w``; patches failing that for every member of
    a group are left out of its search, which then finds the same best match. Groups are the synthesis patches of
    one dominant region, wholly inside it or not (groups under ``min_share`` of the patches are merged); ``margin``
    absorbs rounding.

    Returns ``[(members (L_g,), candidates (N_g,) or None for all)]``, or None when grouping would save less than a
    fifth of the search (weak maps, one big region) or the search has under ``min_scores`` scores (below ~2M the
    per-group gathers and calls cost more than the GEMM they save).
    """
    positions, n = len(target_units), len(style_units)
    if semantic_weight <= 0 or positions * n < min_scores:
        return None
    cells = target_units.view(positions, patch_size**2, -1)  # (L, k·k, K)
    dominant = cells.sum(1).argmax(1)
    share = cells.gather(2, dominant[:, None, None].expand(-1, patch_size**2, 1))[..., 0]
    pure = share.amin(1) > 0.9 * cells.flatten(1).amax(1)
    key = dominant * 2 + pure.long()
    key = torch.where(torch.bincount(key)[key] >= min_share * positions, key, -1)  # small groups: one, merged
    keys, group = torch.unique(key, return_inverse=True)
    one_hot = F.one_hot(group, len(keys)).float()  # (L, G)
    hits = torch.zeros(len(keys), n, device=target_units.device)
    rows = max(1, chunk_elements // n)
    for start in range(0, positions, rows):  # (rows, N) map scores at a time
        scores = target_units[start:start + rows] @ style_units.t()
        can_win = scores >= scores.amax(1, keepdim=True) - 2 / semantic_weight - margin
        hits += one_hot[start:start + rows].t() @ can_win.float()
    groups, cost = [], 0
    for g in range(len(keys)):
        members, candidates = (group == g).nonzero()[:, 0], (hits[g] > 0).nonzero()[:, 0]
        if len(candidates) > 0.75 * n:  # cheaper to search all than to keep a copy of most
            candidates = None
        cost += len(members) * (n if candidates is None else len(candidates))
        groups.append((members, candidates))
    return groups if cost < 0.8 * positions * n else None


@torch.no_grad()
def nearest_patches(target_rows: torch.Tensor, style_rows: torch.Tensor, chunk_elements: int = CHUNK_ELEMENTS,
                    groups: list[PatchGroup] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For each synthesis patch, the style patch of highest score: ``(index (L,) int64, score (L,) float32)``.

    ``target_rows`` ``(L, D)`` and ``style_rows`` ``(N, D)`` come from :func:`ncc_patches`. The scores are the
    convolution of the synthesis features with the normalised style patches as filters, written as one GEMM per
    chunk of ``chunk_elements // L`` style patches, keeping a running best, so memory stays at one ``(L, chunk)``
    score block. ``groups`` (:class:`PatchGroup`, from :func:`candidate_groups`): search each group's members
    among its candidates only.
    """
    if groups is not None:
        index = torch.empty(len(target_rows), dtype=torch.long, device=target_rows.device)
        best = torch.empty(len(target_rows), device=target_rows.device)
        for members, candidates, rows in groups:
            i, b = nearest_patches(target_rows.index_select(0, members), style_rows if rows is None else rows,
                                   chunk_elements)
            index[members] = i if candidates is None else candidates[i]
            best[members] = b
        return index, best
    positions = len(target_rows)
    chunk = max(1, chunk_elements // positions)
    best = torch.full((positions,), -float("inf"), device=target_rows.device)
    index = torch.zeros(positions, dtype=torch.long, device=target_rows.device)
    for start in range(0, len(style_rows), chunk):  # chunks of style patches, not single patches
        value, arg = (target_rows @ style_rows[start:start + chunk].t()).max(dim=1)
        value = value.float()
        better = value > best
        best = torch.where(better, value, best)
        index = torch.where(better, arg + start, index)
    return index, best


class _PatchDistance(torch.autograd.Function):
    """``Σ cover·x² − 2⟨x, overlay⟩ + constant`` with the gradient ``2(cover·x − overlay)`` written out: autograd
    would keep and revisit three products of image-sized tensors."""

    @staticmethod
    def forward(ctx, x, cover, overlay, constant):
        deficit = torch.addcmul(overlay, cover, x, value=-1)  # overlay − cover·x: the only image-sized write
        ctx.save_for_backward(deficit)
        flat = [t.permute(0, 2, 3, 1).reshape(-1) for t in (x, deficit, overlay)]  # channels-last: views
        # Σ cover·x² − 2⟨x, overlay⟩ = −⟨x, deficit⟩ − ⟨x, overlay⟩, two read-only passes
        return constant - flat[0].dot(flat[1]) - flat[0].dot(flat[2])

    @staticmethod
    def backward(ctx, grad):
        (deficit,) = ctx.saved_tensors
        return deficit * (-2 * grad), None, None, None


@functools.lru_cache(maxsize=16)
def _cover(size: tuple[int, int], patch_size: int, stride: int, device: torch.device) -> torch.Tensor:
    """How many patches lie over each position: ``(1, 1, h, w)``, cached per geometry."""
    ones = torch.ones(math.prod(patch_grid(size, patch_size, stride)), patch_size**2, device=device)
    return overlay_patches(ones, size, patch_size, stride)


def patch_distance(features: torch.Tensor, overlay: torch.Tensor, squares: torch.Tensor, patch_size: int = 3,
                   stride: int = 1) -> torch.Tensor:
    """Mean over patch elements of ``(Φ_i(x) − s_i)²`` for ``features`` ``(1, C, h, w)`` and matched style patches
    s_i given by their ``overlay`` ``(1, C, h, w)`` (:func:`overlay_patches`) and the sum of their squared norms
    ``squares`` (a scalar tensor; it only offsets the value).

    Computed without cutting the synthesis into patches:  Σ_i‖x_i − s_i‖² = Σ_p cover(p)·x(p)² − 2⟨x, T⟩ + Σ_i‖s_i‖²,
    where ``cover`` counts the patches over each position and ``T`` is the overlay; its gradient 2(cover·x − T) is
    CNNMRF's "target minus source, summed over overlapping patches".
    """
    _, c, h, w = features.shape
    count = math.prod(patch_grid((h, w), patch_size, stride)) * c * patch_size**2
    cover = _cover((h, w), patch_size, stride, features.device)
    x = features.float().contiguous(memory_format=torch.channels_last)  # the layout of overlay: elementwise in order
    overlay = overlay.float().contiguous(memory_format=torch.channels_last)
    return _PatchDistance.apply(x, cover, overlay, squares.float()).clamp_min(0) / count


def mrf_loss(features: torch.Tensor, matched: torch.Tensor, patch_size: int = 3, stride: int = 1) -> torch.Tensor:
    """Mean over patch elements of ``(Φ_i(x) − matched_i)²`` for ``features`` ``(1, C, h, w)`` and the style patch
    each synthesis patch was matched to, ``matched`` ``(L, k·k·C)`` rows in :func:`extract_patches` order
    (:func:`patch_distance` of their overlay)."""
    _, c, h, w = features.shape
    if matched.numel() != math.prod(patch_grid((h, w), patch_size, stride)) * c * patch_size**2:
        raise ValueError(f"matched patches {tuple(matched.shape)} do not fit features {tuple(features.shape)}")
    matched = matched.reshape(len(matched), -1).detach()
    overlay = overlay_patches(matched, (h, w), patch_size, stride)
    return patch_distance(features, overlay, matched.float().pow(2).sum(), patch_size, stride)


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
    ``stride``; ``keep`` (one ``(cells,)`` bool or None per map) drops patches as :meth:`MRFLoss.set_style` does."""
    parts, pixel0, cell0 = [], 0, 0
    for (h, w), ok in zip(sizes, keep):
        gh, gw = patch_grid((h, w), patch_size, stride)
        y, x = (t.flatten() for t in torch.meshgrid(torch.arange(gh, device=device), torch.arange(gw, device=device),
                                                   indexing="ij"))
        fields = [pixel0 + y * stride * w + x * stride, torch.full_like(y, w), y, x, torch.full_like(y, gh),
                  torch.full_like(y, gw), torch.full_like(y, cell0)]
        parts.append([f if ok is None else f[ok] for f in fields])
        pixel0, cell0 = pixel0 + h * w, cell0 + gh * gw
    origin, width, y, x, grid_h, grid_w, first = (torch.cat(column) for column in zip(*parts))
    row_of_cell = torch.full((cell0,), -1, dtype=torch.long, device=device)
    row_of_cell[first + y * grid_w + x] = torch.arange(len(origin), device=device)
    return PatchIndex(origin, width, y, x, grid_h, grid_w, first, row_of_cell)


def overlay_style_patches(style_pixels: torch.Tensor, index: PatchIndex, rows: torch.Tensor, size,
                          patch_size: int = 3, stride: int = 1) -> torch.Tensor:
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


def neighbour_candidates(field: torch.Tensor, dy: int, dx: int, shifted: torch.Tensor) -> torch.Tensor:
    """PatchMatch propagation: for each synthesis position of ``field`` ``(h', w')`` (style rows), the match of its
    neighbour ``(dy, dx)`` cells away, moved back by ``(dy, dx)`` in the style grid (where a coherent copy of the
    style would continue); ``shifted`` ``(N,)``: each style row moved back so (:func:`shift_patches`, −1 where it
    falls off). A position whose neighbour or moved match does not exist keeps its own match."""
    hp, wp = field.shape
    if abs(dy) >= hp or abs(dx) >= wp:
        return field
    neighbour = field.clone()
    ys, yd = slice(max(dy, 0), hp + min(dy, 0)), slice(max(-dy, 0), hp + min(-dy, 0))
    xs, xd = slice(max(dx, 0), wp + min(dx, 0)), slice(max(-dx, 0), wp + min(-dx, 0))
    neighbour[yd, xd] = field[ys, xs]
    moved = shifted[neighbour]
    return torch.where(moved >= 0, moved, field)


@torch.no_grad()
def best_candidates(target_rows: torch.Tensor, style_rows: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """For each synthesis row ``(L, D)``, the best of its ``candidates`` ``(L, m)`` style rows ``(N, D)`` by dot
    product: ``(L,)`` style rows.

    The L·m dot products are one sampled matrix product (``torch.sparse.sampled_addmm``: ``target · styleᵀ`` at the
    (position, candidate) pairs only), which reads each candidate row in place: gathering the ``(L, m, D)`` candidate
    rows for a batched GEMM costs 4-5x more on a CPU. Float32 rows (the CPU kernel has no bfloat16).
    """
    n, m = candidates.shape
    crow = torch.arange(0, n * m + 1, m, device=candidates.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        # a candidate listed twice in a row (a coherent region proposes its current match again) is scored twice;
        # the kernel computes each stored pair on its own, so the pattern needs no sorting or deduplication
        pattern = torch.sparse_csr_tensor(crow, candidates.flatten(), torch.zeros(n * m, device=candidates.device),
                                          (n, len(style_rows)), check_invariants=False)
        scores = torch.sparse.sampled_addmm(pattern, target_rows.float(), style_rows.float().t(), beta=0)
    return candidates.gather(1, scores.values().view(n, m).argmax(1, keepdim=True))[:, 0]


def sampling_pools(groups: list[PatchGroup] | None, positions: int, patches: int, device=None) -> tuple:
    """Where PatchMatch's random search draws from, for ``positions`` synthesis patches among ``patches`` style
    patches: ``(pool (P,), start (L,), count (L,))``, position i drawing from ``pool[start_i : start_i + count_i]``,
    its group's candidates (:func:`candidate_groups`: the style regions it may match) or, without groups, all."""
    if not groups:
        zeros = torch.zeros(positions, dtype=torch.long, device=device)
        return torch.arange(patches, device=device), zeros, zeros + patches
    pools = [torch.arange(patches, device=device) if g.candidates is None else g.candidates for g in groups]
    start = torch.empty(positions, dtype=torch.long, device=device)
    count = torch.empty_like(start)
    offset = 0
    for group, pool in zip(groups, pools):
        start[group.members], count[group.members] = offset, len(pool)
        offset += len(pool)
    return torch.cat(pools), start, count


@torch.no_grad()
def patchmatch_step(target_rows: torch.Tensor, style_rows: torch.Tensor, field: torch.Tensor, index: PatchIndex,
                    pools: tuple[torch.Tensor, torch.Tensor, torch.Tensor], iteration: int,
                    generator: torch.Generator | None = None, shifts: dict | None = None) -> torch.Tensor:
    """One vectorised PatchMatch iteration (Barnes et al. 2009) of the nearest-neighbour ``field`` ``(h', w')`` of
    the synthesis rows ``(h'·w', D)`` among the style rows ``(N, D)``; returns the new field, no worse than the old
    one for these rows.

    Candidates for each position: its current match; the matches of two neighbours moved back (propagation), at
    distance 1 and at a distance cycling through 2, 4 .. 32 (so good matches cross the grid in a few iterations
    where a step to the next cell moves them one cell), to the left and above on even ``iteration`` numbers, to
    the right and below on odd ones (PatchMatch's alternating scan order); one style patch a few cells from the
    current match and one drawn from the style patches it may match (random search): ``pools`` from
    :func:`sampling_pools`. ``shifts``: a cache of the
    :func:`shift_patches` tables, kept by the caller between iterations.
    """
    shifts = {} if shifts is None else shifts
    flat = field.flatten()
    sign = 1 if iteration % 2 == 0 else -1
    candidates = [flat]
    for step in (1, 2 ** (1 + (iteration // 2) % 5)):
        for dy, dx in ((0, sign * step), (sign * step, 0)):
            if (dy, dx) not in shifts:
                rows = torch.arange(len(style_rows), device=flat.device)
                shifts[dy, dx] = shift_patches(rows, -dy, -dx, index, torch.full_like(rows, -1))
            candidates.append(neighbour_candidates(field, dy, dx, shifts[dy, dx]).flatten())
    radius = 4
    near = torch.randint(-radius, radius + 1, (2, len(flat)), generator=generator, device=flat.device)
    candidates.append(shift_patches(flat, near[0], near[1], index, flat))
    pool, start, count = pools
    pick = (torch.rand(len(flat), generator=generator, device=flat.device) * count).long().minimum(count - 1)
    candidates.append(pool[start + pick])
    return best_candidates(target_rows, style_rows, torch.stack(candidates, 1)).view(field.shape)


class MRFLoss(nn.Module):
    """MRF style loss over ``layers``, with or without semantic maps.

    Args:
        layers / weights: encoder layers and their weights (CNNMRF and neural-doodle: ``relu3_1``, ``relu4_1``).
        patch_size: k (3 in both papers).
        style_stride: stride of the style patches (CNNMRF 2, neural-doodle 1).
        stride: stride of the synthesis patches (CNNMRF 2, neural-doodle 1).
        semantic_weight: weight of the map channels in the matching (neural-doodle ``--semantic-weight`` 10;
            0 = plain CNNMRF).
        match_dtype: precision of the NCC search (``torch.bfloat16`` halves the style patches' memory and is ~4x
            faster on CPUs with AMX); the loss itself is float32.
        match_channels: search on this many principal channels of each layer's style features
            (:func:`principal_channels`) instead of all of them; 0, or at least a layer's channel count, searches
            that layer exactly. The matches are then approximate (near-ties may swap) and the loss still reads the
            full patches. On the Monet doodle at 512 px with strides 1 and the exact search, 64 channels cut the
            run by 20 % for the same exact MRF loss of the result (32 channels: +2 %; strides 2: +4 % on average).
        search: ``"exact"`` (every call searches all style patches) or ``"patchmatch"`` (exact on a layer's first
            call at a size, then one :func:`patchmatch_step` per call from the previous matches; searches under
            ``PATCHMATCH_MIN_SCORES`` scores stay exact). With 64 channels, searching every second step, the Monet
            doodle's step at 512 px costs ~1.25x the VGG pass, for the exact search's result quality.
        search_every: search on one call in this many at a size and keep the matches in between (1: every call,
            as both papers do). A phase's first call always searches. Two L-BFGS steps on the same matches see one
            objective, which the curvature pair between them assumes; on the Monet doodle at 512 px, searching
            every second step gives the same exact MRF loss of the result (3 seeds).
        seed: seed of PatchMatch's random search.

    Call :meth:`set_style` with the style features (one dict per style copy: CNNMRF adds rotated and scaled
    copies) and, for guidance, their masks; :meth:`set_target_masks` with the target's masks. ``forward(features)``
    matches every synthesis patch, then returns Σ_l w_l · mrf_loss.
    """

    def __init__(self, layers=("relu3_1", "relu4_1"), weights=None, patch_size: int = 3, style_stride: int = 1,
                 stride: int = 1, semantic_weight: float = 0.0, match_dtype: torch.dtype = torch.float32,
                 chunk_elements: int = CHUNK_ELEMENTS, match_channels: int = 0, search: str = "exact",
                 search_every: int = 1, seed: int = 0):
        super().__init__()
        layers = list(layers)
        self.weights = layer_weights(layers, [1.0] * len(layers) if weights is None else weights)
        self.layers = tuple(self.weights)
        self.patch_size, self.style_stride, self.stride = patch_size, style_stride, stride
        self.semantic_weight = float(semantic_weight)
        self.match_dtype = match_dtype
        self.chunk_elements = chunk_elements
        self.match_channels = int(match_channels)
        # {layer: (N, D)} the search rows: normalised style patches (projected on `basis` when it is set) + mask part,
        # match_dtype
        self.style_rows: dict[str, torch.Tensor] = {}
        # {layer: (P + 1, C)} float32 style features as pixel rows (all copies, then a zero row): the loss reads the
        # matched patches from them through `patch_index`, so no (N, k·k·C) copy of the patches is kept for it
        self.style_pixels: dict[str, torch.Tensor] = {}
        self.patch_index: dict[str, PatchIndex] = {}
        self.style_norms: dict[str, torch.Tensor] = {}  # (N,) float32 L2 norms of the style patches
        self.feature_width: dict[str, int] = {}  # per layer: width of the feature part of a style row
        self.basis: dict[str, torch.Tensor | None] = {}  # per layer: (C, match_channels) or None (exact search)
        self.style_units: dict[str, torch.Tensor | None] = {}  # (N, k·k·K) float32 mask rows, for candidate_groups
        self.target_masks: dict[str, torch.Tensor] = {}  # "image": (1, K, H, W)
        self.last_index: dict[str, torch.Tensor] = {}  # matches of the last forward, for inspection and tests
        # per layer: (size, target mask rows, {dtype: (L, D) row buffer}, [PatchGroup] or None)
        self._target: dict[str, tuple] = {}
        self.search = search
        self.search_every = int(search_every)
        # per layer: (size, calls since the last search, the matches' overlay, Σ of their squared norms)
        self._matched: dict[str, tuple] = {}
        # per layer, patchmatch: (size, (h', w') matches, PatchMatch steps done, sampling_pools, float32 style rows)
        self._field: dict[str, tuple] = {}
        self._generator = torch.Generator().manual_seed(seed)
        self._shifts: dict[str, dict] = {}  # per layer: {(dy, dx): (N,) shift_patches table}, patchmatch

    @property
    def guided(self) -> bool:
        return self.semantic_weight > 0 and "image" in self.target_masks

    @torch.no_grad()
    def set_style(self, features, masks=None, valid=None) -> None:
        """Cache the style patches.

        Args:
            features: ``{layer: (1, C, h, w)}`` or a list of them (style copies).
            masks: ``(1, K, H, W)`` image-resolution masks (a list: one per copy), or None (unguided).
            valid: ``(1, 1, H, W)`` per copy, 1 where the copy has image content (rotated copies have empty
                corners); patches touching invalid pixels are dropped.
        """
        from ..core.semantic import masks_at

        features = [features] if isinstance(features, dict) else list(features)
        masks = [None] * len(features) if masks is None else ([masks] if torch.is_tensor(masks) else list(masks))
        valid = [None] * len(features) if valid is None else ([valid] if torch.is_tensor(valid) else list(valid))
        guided = self.semantic_weight > 0 and all(m is not None for m in masks)
        k, s = self.patch_size, self.style_stride
        for layer in self.layers:
            feats = [f[layer].detach().float().contiguous(memory_format=torch.channels_last) for f in features]
            if min(feats[0].shape[-2:]) < k:
                raise ValueError(f"style features at {layer} are {tuple(feats[0].shape[-2:])}, smaller than a "
                                 f"{k}x{k} patch: use a larger style image or size")
            channels = feats[0].shape[1]
            basis = principal_channels(feats, self.match_channels) if 0 < self.match_channels < channels else None
            rows, norms, units, keeps = [], [], [], []
            for f, mask, ok in zip(feats, masks, valid):
                u = mask_rows(masks_at(mask.float().to(f.device), f.shape[-2:]), k, s) if guided else None
                # search rows: the normalised patches, or those of the features projected on the basis
                r, n = ncc_patches(f if basis is None else project_channels(f, basis), k, s, u, None, self.match_dtype)
                if basis is not None:
                    n = patch_norms(f, k, s)
                keep = None
                if ok is not None:  # keep patches lying wholly inside the valid area
                    inside = -F.max_pool2d(-masks_at(ok.float().to(f.device), f.shape[-2:]), k, stride=s)
                    keep = inside.flatten() > 0.99
                    r, n, u = (None if t is None else t[keep] for t in (r, n, u))
                rows.append(r)
                norms.append(n)
                units.append(u)
                keeps.append(keep)
            self.basis[layer] = basis
            self.style_rows[layer] = torch.cat(rows)
            self.style_norms[layer] = torch.cat(norms)
            self.style_units[layer] = torch.cat(units) if guided else None
            self.feature_width[layer] = (channels if basis is None else basis.shape[1]) * k * k
            pixels = [f[0].permute(1, 2, 0).reshape(-1, channels) for f in feats]  # channels-last: views
            self.style_pixels[layer] = torch.cat(pixels + [pixels[0].new_zeros(1, channels)])
            self.patch_index[layer] = patch_index([f.shape[-2:] for f in feats], k, s, keeps, feats[0].device)
        # the groups, matches and shifts index these rows
        self._target, self._field, self._shifts, self._matched = {}, {}, {}, {}

    def set_target_masks(self, masks: torch.Tensor | None) -> None:
        """Target masks ``(1, K, H, W)`` at image resolution (None clears them); pooled to each layer on use."""
        self.target_masks = {} if masks is None else {"image": masks.float()}
        self._target, self._field, self._matched = {}, {}, {}

    def match(self, layer: str, feature: torch.Tensor) -> torch.Tensor:
        """Nearest style patch index for each synthesis patch of ``feature`` at ``layer``: ``(h'·w',)``.

        ``search="patchmatch"``: the exact search the first time for a layer and size (a phase's start), then one
        :func:`patchmatch_step` from the previous matches per call."""
        style = self.style_rows[layer]
        ck2 = self.feature_width[layer]
        feature = feature.detach().contiguous(memory_format=torch.channels_last)
        basis = self.basis[layer]
        search = feature if basis is None else project_channels(feature, basis, self.match_dtype)
        size = tuple(feature.shape[-2:])
        grid = patch_grid(size, self.patch_size, self.stride)
        guided = self.guided and style.shape[1] > ck2
        if not guided:
            style = style[:, :ck2]
        patchmatch = self.search == "patchmatch" and math.prod(grid) * len(style) >= PATCHMATCH_MIN_SCORES
        previous = self._field.get(layer) if patchmatch else None
        exact = previous is None or previous[0] != size
        # PatchMatch scores its candidates in float32 (best_candidates), the exact search in match_dtype
        dtype = self.match_dtype if exact else torch.float32
        if guided:
            unit, buffers, groups = self._target_rows(layer, size, feature.device)
            rows, _ = ncc_patches(search, self.patch_size, self.stride, unit, self.semantic_weight, dtype,
                                  out=buffers.get(dtype))
            buffers[dtype] = rows
        else:
            rows, groups = extract_patches(search, self.patch_size, self.stride, dtype), None
        if exact:
            index = nearest_patches(rows, style, self.chunk_elements, groups)[0]
            if patchmatch:
                pools = sampling_pools(groups, len(rows), len(style), rows.device)
                self._field[layer] = size, index.view(grid), 0, pools, style.float()
            return index
        _, field, steps, pools, style32 = previous
        field = patchmatch_step(rows, style32, field, self.patch_index[layer], pools, steps, self._generator,
                                self._shifts.setdefault(layer, {}))
        self._field[layer] = size, field, steps + 1, pools, style32
        return field.flatten()

    def _target_rows(self, layer: str, size: tuple, device) -> tuple:
        """``(mask rows, {dtype: (L, D) row buffer}, [PatchGroup] or None)`` of the target map at ``layer`` and
        ``size``: the map does not change, so they are kept per layer and size."""
        from ..core.semantic import masks_at

        if self._target.get(layer, (None,))[0] != size:
            style = self.style_rows[layer]
            unit = mask_rows(masks_at(self.target_masks["image"], size).to(device), self.patch_size, self.stride)
            groups = candidate_groups(unit, self.style_units[layer], self.patch_size, self.semantic_weight,
                                      self.chunk_elements)
            if groups is not None:
                groups = [PatchGroup(m, c, None if c is None else style.index_select(0, c)) for m, c in groups]
            self._target[layer] = size, unit, {}, groups
        return self._target[layer][1:]

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        if not self.style_rows:
            raise RuntimeError("MRFLoss: set_style() was not called")
        total = 0.0
        for layer, weight in self.weights.items():
            # one float32 channels-last copy (none from a bf16 encoder), read by both the search and the loss
            feature = features[layer].float().contiguous(memory_format=torch.channels_last)
            size = tuple(feature.shape[-2:])
            size_, calls, overlay, squares = self._matched.get(layer, (None, 0, None, None))
            if size_ == size and calls + 1 < self.search_every:  # keep the last matches and their overlay
                self._matched[layer] = size, calls + 1, overlay, squares
            else:
                index = self.last_index[layer] = self.match(layer, feature)
                overlay = overlay_style_patches(self.style_pixels[layer], self.patch_index[layer], index, size,
                                                self.patch_size, self.stride)
                squares = self.style_norms[layer][index].square().sum()
                self._matched[layer] = size, 0, overlay, squares
            loss = patch_distance(feature, overlay, squares, self.patch_size, self.stride)
            total = total + weight * loss
        return total
