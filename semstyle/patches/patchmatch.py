"""One vectorised PatchMatch step (Barnes et al. 2009) over the previous matches: a few candidates per synthesis
patch (its match, its neighbours' matches shifted back, random ones) scored with one sampled matrix product,
never trading a match for a worse one."""

from __future__ import annotations

import warnings

import torch

from .geometry import PatchIndex, shift_patches
from .search import PatchGroup

# below this many scores (synthesis × style patches) the exact search costs less than a PatchMatch step's dozens of
# small operations: relu4_1 of a 256 px doodle (660 × 660) is searched exactly, its relu3_1 (2852 × 2852) is not
PATCHMATCH_MIN_SCORES = 1 << 22


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
        pattern = torch.sparse_csr_tensor(
            crow,
            candidates.flatten(),
            torch.zeros(n * m, device=candidates.device),
            (n, len(style_rows)),
            check_invariants=False,
        )
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
def patchmatch_step(
    target_rows: torch.Tensor,
    style_rows: torch.Tensor,
    field: torch.Tensor,
    index: PatchIndex,
    pools: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    iteration: int,
    generator: torch.Generator | None = None,
    shifts: dict | None = None,
) -> torch.Tensor:
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
    # drawn on the generator's device (the CPU's, as every seeded draw in semstyle) and then moved: a CUDA run
    # refuses a CPU generator, and one stream of draws keeps a seed's picture the same on either device
    near = torch.randint(-radius, radius + 1, (2, len(flat)), generator=generator).to(flat.device)
    candidates.append(shift_patches(flat, near[0], near[1], index, flat))
    pool, start, count = pools
    pick = (torch.rand(len(flat), generator=generator).to(flat.device) * count).long().minimum(count - 1)
    candidates.append(pool[start + pick])
    return best_candidates(target_rows, style_rows, torch.stack(candidates, 1)).view(field.shape)
