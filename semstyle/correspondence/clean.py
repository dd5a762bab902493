"""DST's keypoint cleaning (Kim et al., "Deformable Style Transfer", ECCV 2020, ``cleanpoints.py``).

NBB returns hundreds of pairs, many redundant or inconsistent; DST keeps a spread-out, non-crossing subset:

1. drop pairs with accumulated activation < 1 (NBB-specific);
2. greedy selection of at most ``max_num_points`` (80) pairs: take the highest activation, then suppress every
   pair whose content point lies within +-``b`` (10) px of it (a square window, both axes, inclusive);
3. twice: bring the style points into the content frame with the least-squares similarity (Umeyama) fitted from
   content to style and inverted, clamp them into the content image, and walk the pairs in order deleting every
   later segment (content point -> aligned style point) that crosses an earlier kept one.

All of this happens with both images scaled to a long side of ``im_size`` (256); results are in original pixels.
Deliberate difference: DST's greedy loop always runs ``max_num_points`` times, and once every activation has been
zeroed its ``argmax`` returns index 0 again and again (then pruned as consecutive repeats, but pair 0 can come
back with activation 0); here the loop simply stops when no candidate is left.
"""

from __future__ import annotations

import torch

from ..errors import SemstyleError, check
from .align import similarity_align

MIN_ACTIVATION = 1.0
MAX_NUM_POINTS = 80  # DST job_example.sh
SPACING = 10  # b, px at the working size
WORK_SIZE = 256  # im_size


def greedy_select(points: torch.Tensor, activation: torch.Tensor, max_num_points: int = MAX_NUM_POINTS,
                  b: float = SPACING) -> torch.Tensor:
    """Indices of at most ``max_num_points`` points, by decreasing activation, no two within +-``b`` on both axes."""
    act = activation.clone().double()
    chosen = []
    for _ in range(max_num_points):  # at most 80 rounds, each vectorised over all points
        i = int(torch.argmax(act)) if len(act) else 0
        if not len(act) or act[i] <= 0:
            break
        chosen.append(i)
        act[((points - points[i]).abs() <= b).all(1)] = 0
    return torch.tensor(chosen, dtype=torch.long)


def crossing_matrix(starts: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
    """``(N, N)`` bool: segment i (starts[i] -> ends[i]) crosses segment j, by DST's test.

    The two lines' intersection (Cramer's rule; parallel lines never cross) must lie inside the overlap of the two
    segments' bounding boxes, bounds included.
    """
    p, q = starts.double(), ends.double()
    a = p[:, 1] - q[:, 1]
    bb = q[:, 0] - p[:, 0]
    c = -(p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1])
    d = a[:, None] * bb[None] - bb[:, None] * a[None]
    dx = c[:, None] * bb[None] - bb[:, None] * c[None]
    dy = a[:, None] * c[None] - c[:, None] * a[None]
    safe = torch.where(d == 0, torch.ones_like(d), d)
    x, y = dx / safe, dy / safe
    lo, hi = torch.minimum(p, q), torch.maximum(p, q)
    lo_x, hi_x = torch.maximum(lo[:, None, 0], lo[None, :, 0]), torch.minimum(hi[:, None, 0], hi[None, :, 0])
    lo_y, hi_y = torch.maximum(lo[:, None, 1], lo[None, :, 1]), torch.minimum(hi[:, None, 1], hi[None, :, 1])
    return (d != 0) & (x >= lo_x) & (x <= hi_x) & (y >= lo_y) & (y <= hi_y)


def remove_crossing(starts: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
    """Keep-mask: walking pairs in order, each kept segment deletes every later segment that crosses it."""
    cross = crossing_matrix(starts, ends)
    alive = torch.ones(len(starts), dtype=torch.bool)
    for i in range(len(starts)):  # <= max_num_points rounds
        if alive[i]:
            alive[i + 1:] &= ~cross[i, i + 1:]
    return alive


def aligned_targets(points_a: torch.Tensor, points_b: torch.Tensor, hw_a: tuple[int, int]) -> torch.Tensor:
    """Style points brought into the content frame (DST's ``get_target_pts``), clamped to ``[1, size - 1]``."""
    if len(points_a) == 0:
        return points_b.clone()
    t = similarity_align(points_b, points_a, fit="dst_to_src")
    return torch.stack([t[:, 0].clamp(1, hw_a[1] - 1), t[:, 1].clamp(1, hw_a[0] - 1)], 1)


def clean_points(points_a: torch.Tensor, points_b: torch.Tensor, activation: torch.Tensor | None,
                 size_a: tuple[int, int], size_b: tuple[int, int], max_num_points: int = MAX_NUM_POINTS,
                 b: float = SPACING, im_size: int = WORK_SIZE, min_activation: float = MIN_ACTIVATION,
                 return_targets: bool = False):
    """DST's cleaning of NBB pairs.

    Args:
        points_a, points_b: ``(N, 2)`` (x, y) in the original pixels of the content (A) and style (B) images.
        activation: ``(N,)`` NBB accumulated activations, or ``None`` (all 1, as DST does without a file).
        size_a, size_b: ``(H, W)`` of the original images.
        max_num_points, b, im_size, min_activation: DST's defaults 80, 10, 256, 1.

    Returns ``(points_a, points_b, activation)`` of the kept pairs in original pixels, in selection order
    (decreasing activation); with ``return_targets`` also the aligned style points in A's original pixels.
    """
    check(max_num_points >= 1 and b >= 0 and im_size >= 8,
          f"clean_points: need max_num_points >= 1, b >= 0, im_size >= 8 (got {max_num_points}, {b}, {im_size})")
    pa, pb = torch.as_tensor(points_a).float().cpu(), torch.as_tensor(points_b).float().cpu()
    if pa.shape != pb.shape or pa.ndim != 2 or pa.shape[1:] != (2,):
        raise SemstyleError(f"clean_points: points must be two (N, 2) tensors, got {tuple(pa.shape)} and "
                            f"{tuple(pb.shape)}")
    act = torch.ones(len(pa)) if activation is None else torch.as_tensor(activation).float().cpu().reshape(-1)
    check(len(act) == len(pa), f"clean_points: {len(act)} activations for {len(pa)} pairs", SemstyleError)
    fac_a, fac_b = im_size / max(size_a), im_size / max(size_b)
    hw_a = (int(size_a[0] * fac_a), int(size_a[1] * fac_a))  # DST's resized content image (truncated like PIL sizes)
    a, bpts = pa * fac_a, pb * fac_b

    keep = act >= min_activation
    a, bpts, act = a[keep], bpts[keep], act[keep]
    sel = greedy_select(a, act, max_num_points, b)
    a, bpts, act = a[sel], bpts[sel], act[sel]
    for _ in range(2):  # twice: re-aligning after a removal can create new crossings
        keep = remove_crossing(a, aligned_targets(a, bpts, hw_a))
        a, bpts, act = a[keep], bpts[keep], act[keep]
    out = (a / fac_a, bpts / fac_b, act)
    if return_targets:
        out += (aligned_targets(a, bpts, hw_a) / fac_a,)
    return out
