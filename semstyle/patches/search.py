"""The exact patch search: for each synthesis patch, the style patch of highest normalised cross-correlation (the
convolution with the normalised style patches as filters, CNNMRF's ``MRFMM``), chunked (:func:`semstyle.core.search.
nearest_rows`); restricted to the style regions a semantic map allows (:func:`candidate_groups`), optionally on the
style features' leading principal channels (:func:`principal_channels`)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..core.search import CHUNK_ENTRIES, nearest_rows

CHUNK_ELEMENTS = (
    CHUNK_ENTRIES  # scores per chunk of the NCC search: 16.8 M (32 MiB bf16) -> ~1400 style patches at 512 px
)


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
def candidate_groups(
    target_units: torch.Tensor,
    style_units: torch.Tensor,
    patch_size: int,
    semantic_weight: float,
    chunk_elements: int = CHUNK_ELEMENTS,
    min_share: float = 1 / 32,
    margin: float = 0.02,
    min_scores: int = 1 << 21,
) -> list[tuple[torch.Tensor, torch.Tensor | None]] | None:
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
        scores = target_units[start : start + rows] @ style_units.t()
        can_win = scores >= scores.amax(1, keepdim=True) - 2 / semantic_weight - margin
        hits += one_hot[start : start + rows].t() @ can_win.float()
    groups, cost = [], 0
    for g in range(len(keys)):
        members, candidates = (group == g).nonzero()[:, 0], (hits[g] > 0).nonzero()[:, 0]
        if len(candidates) > 0.75 * n:  # cheaper to search all than to keep a copy of most
            candidates = None
        cost += len(members) * (n if candidates is None else len(candidates))
        groups.append((members, candidates))
    return groups if cost < 0.8 * positions * n else None


@torch.no_grad()
def nearest_patches(
    target_rows: torch.Tensor,
    style_rows: torch.Tensor,
    chunk_elements: int = CHUNK_ELEMENTS,
    groups: list[PatchGroup] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each synthesis patch, the style patch of highest score: ``(index (L,) int64, score (L,) float32)``.

    ``target_rows`` ``(L, D)`` and ``style_rows`` ``(N, D)`` come from :func:`ncc_patches`. The scores are the
    convolution of the synthesis features with the normalised style patches as filters, written as one GEMM per
    chunk of ``chunk_elements // L`` style patches (:func:`semstyle.core.search.nearest_rows`), so memory stays at
    one ``(L, chunk)`` score block. ``groups`` (:class:`PatchGroup`, from :func:`candidate_groups`): search each
    group's members among its candidates only.
    """
    if groups is not None:
        index = torch.empty(len(target_rows), dtype=torch.long, device=target_rows.device)
        best = torch.empty(len(target_rows), device=target_rows.device)
        for members, candidates, rows in groups:
            i, b = nearest_patches(
                target_rows.index_select(0, members), style_rows if rows is None else rows, chunk_elements
            )
            index[members] = i if candidates is None else candidates[i]
            best[members] = b
        return index, best
    index, best, _ = nearest_rows(target_rows, style_rows, "dot", chunk_elements)
    return index, best
