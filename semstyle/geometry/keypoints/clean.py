"""DST's keypoint cleaning (Kim et al., "Deformable Style Transfer", ECCV 2020, ``cleanpoints.py``).

NBB returns hundreds of pairs, many redundant or inconsistent; DST keeps a spread-out, non-crossing subset:

1. drop pairs with accumulated activation < 1 (NBB-specific);
2. greedy selection of at most ``max_num_points`` (80) pairs: take the highest activation, then suppress every
   pair whose content point lies within +-``b`` (10) px of it (a square window, both axes, inclusive);
3. twice: bring the style points into the content frame with the least-squares similarity (Umeyama) fitted from
   content to style and inverted, clamp them into the content image, and walk the pairs in order deleting every
   later segment (content point -> aligned style point) that crosses an earlier kept one.

**Integer working frame.** DST cleans NBB's raw output as it comes: integer pixels of the images resized to a long
side of ``im_size`` (256), where "within 10 px" is an exact integer test. Here every point is first put on that
grid (:func:`to_grid`, the exact inverse of NBB's per-axis mapping to original pixels,
:func:`semstyle.correspondence.nbb._to_original`), the selection runs on integers, and the kept rows of the input
are returned unchanged. So one raw set gives the same selection whether it arrives in DST's frame, in original
pixels from :func:`~semstyle.correspondence.nbb_keypoints`, or rounded through the text files (when the original
image is at least as large as the working one; a smaller one cannot hold the working frame's integer positions).

Exactness has one limit: segments that touch exactly (two pairs sharing a style point, or targets clamped onto
the same image edge) meet at a bound of the inclusive crossing test, where DST's float32 Umeyama fit decides by
rounding noise; such ties can go either way (in DST too, across numpy/LAPACK builds).

Deliberate difference: DST's greedy loop always runs ``max_num_points`` times, and once every activation has been
zeroed its ``argmax`` returns index 0 again and again (then pruned as consecutive repeats, but pair 0 comes back
with activation 0 and takes part in the alignment); here the loop simply stops when no candidate is left.
"""

from __future__ import annotations

import torch

from ...conf.keypoints import DST_MAX_POINTS, DST_MIN_ACTIVATION, DST_SPACING, DST_WORK_SIZE
from ...conf.sizes import target_size
from ...errors import SemstyleError, check
from .align import similarity_align

MIN_ACTIVATION = DST_MIN_ACTIVATION
MAX_NUM_POINTS = DST_MAX_POINTS
SPACING = DST_SPACING  # b, px at the working size
WORK_SIZE = DST_WORK_SIZE  # im_size
# A stride-2 cell centre of NBB lies exactly halfway between two working pixels; it goes to the lower one (where
# DST's NBB puts it: 2 x cell index). The tolerance absorbs the float32 noise of the trip through original pixels.
GRID_TOL = 1e-3


def working_size(size_hw: tuple[int, int], im_size: int = WORK_SIZE) -> tuple[int, int]:
    """``(H, W)`` of the working frame: long side ``im_size``, the frame NBB runs in
    (:func:`~semstyle.core.image.resize`)."""
    return target_size(int(size_hw[0]), int(size_hw[1]), im_size)


def to_grid(points: torch.Tensor, size_hw: tuple[int, int], im_size: int = WORK_SIZE) -> torch.Tensor:
    """``(N, 2)`` (x, y) original pixels -> ``(N, 2)`` int64 (x, y) pixels of the working frame.

    Per-axis scale about pixel edges, ``w = (x + 0.5) W_work / W_orig - 0.5``, then the nearest integer (exact
    halves go down, see ``GRID_TOL``): the inverse of NBB's mapping for every point on the working grid.
    """
    h, w = working_size(size_hw, im_size)
    scale = torch.tensor([w / size_hw[1], h / size_hw[0]], dtype=torch.float64)
    v = (torch.as_tensor(points).double().cpu() + 0.5) * scale - 0.5
    return torch.ceil(v - 0.5 - GRID_TOL).long()


def from_grid(grid: torch.Tensor, size_hw: tuple[int, int], im_size: int = WORK_SIZE) -> torch.Tensor:
    """Working-frame (x, y) -> original pixels (x, y), float: the mapping :func:`to_grid` inverts."""
    h, w = working_size(size_hw, im_size)
    scale = torch.tensor([size_hw[1] / w, size_hw[0] / h], dtype=torch.float64)
    return ((grid.double() + 0.5) * scale - 0.5).float()


def dst_to_original(grid: torch.Tensor, size_hw: tuple[int, int], im_size: int = WORK_SIZE) -> torch.Tensor:
    """Working-frame integer (x, y) -> original pixels the way DST's ``cleanpoints.py`` writes them: divided by the
    long side's factor ``im_size / max(H, W)`` on both axes and truncated. Use it to reproduce DST's cleaned files
    from DST's raw NBB files (which are in the working frame); semstyle's own files use :func:`from_grid`."""
    fac = im_size / max(size_hw)
    return torch.trunc(grid.double() / fac).float()


def greedy_select(
    points: torch.Tensor, activation: torch.Tensor, max_num_points: int = MAX_NUM_POINTS, b: float = SPACING
) -> torch.Tensor:
    """Indices of at most ``max_num_points`` points, by decreasing activation, no two within +-``b`` on both axes.

    ``points`` should be integers of the working frame (as in DST) so that the inclusive window is exact; ties in
    activation go to the lower index (``np.argmax``, ``torch.argmax``).
    """
    act = torch.as_tensor(activation).clone().double()
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
            alive[i + 1 :] &= ~cross[i, i + 1 :]
    return alive


def aligned_targets(points_a: torch.Tensor, points_b: torch.Tensor, hw_a: tuple[int, int]) -> torch.Tensor:
    """Style points brought into the content frame (DST's ``get_target_pts``), clamped to ``[1, size - 1]``."""
    if len(points_a) == 0:
        return torch.as_tensor(points_b).float().clone()
    t = similarity_align(points_b.float(), points_a.float(), fit="dst_to_src")
    return torch.stack([t[:, 0].clamp(1, hw_a[1] - 1), t[:, 1].clamp(1, hw_a[0] - 1)], 1)


def clean_grid(
    grid_a: torch.Tensor,
    grid_b: torch.Tensor,
    activation: torch.Tensor,
    size_a: tuple[int, int],
    max_num_points: int = MAX_NUM_POINTS,
    b: float = SPACING,
    im_size: int = WORK_SIZE,
    min_activation: float = MIN_ACTIVATION,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DST's cleaning on integer working-frame points: ``(rows, targets)``.

    Args:
        grid_a, grid_b: ``(N, 2)`` int (x, y) pixels of the content (A) and style (B) images resized to a long side
            of ``im_size`` (DST's raw NBB output, or :func:`to_grid` of original pixels).
        activation: ``(N,)`` float.
        size_a: ``(H, W)`` of the original content image; the aligned style points are clamped into its resized
            size, ``int(H * im_size / max(H, W))`` as DST's PIL resize (at most one pixel less than NBB's frame,
            whose sizes are rounded).

    Returns the indices of the kept rows in selection order (decreasing activation) and the aligned style points
    ``(K, 2)`` float in the working frame of A.
    """
    fac = im_size / max(size_a)
    hw_a = (int(size_a[0] * fac), int(size_a[1] * fac))
    act = torch.as_tensor(activation).double()
    rows = torch.nonzero(act >= min_activation).flatten()
    rows = rows[greedy_select(grid_a[rows], act[rows], max_num_points, b)]
    for _ in range(2):  # twice: re-aligning after a removal can create new crossings
        targets = aligned_targets(grid_a[rows], grid_b[rows], hw_a)
        # in DST's (row, col) order, so that the float64 arithmetic of the test is DST's
        rows = rows[remove_crossing(grid_a[rows].flip(1).double(), targets.flip(1).double())]
    return rows, aligned_targets(grid_a[rows], grid_b[rows], hw_a)


def _floats(x) -> torch.Tensor:
    x = torch.as_tensor(x).detach().cpu()
    return x if x.is_floating_point() else x.float()


def _check_pairs(points_a, points_b, activation, name: str = "clean_points"):
    """The inputs as CPU float tensors of their own precision (kept rows come back exactly as given)."""
    pa, pb = _floats(points_a), _floats(points_b)
    if pa.shape != pb.shape or pa.ndim != 2 or pa.shape[1:] != (2,):
        raise SemstyleError(f"{name}: points must be two (N, 2) tensors, got {tuple(pa.shape)} and {tuple(pb.shape)}")
    act = torch.ones(len(pa)) if activation is None else _floats(activation).reshape(-1)
    check(len(act) == len(pa), f"{name}: {len(act)} activations for {len(pa)} pairs", SemstyleError)
    check(
        bool(torch.isfinite(pa).all() and torch.isfinite(pb).all() and torch.isfinite(act).all()),
        f"{name}: points or activations contain NaN or infinite values",
        SemstyleError,
    )
    return pa, pb, act


def clean_points(
    points_a: torch.Tensor,
    points_b: torch.Tensor,
    activation: torch.Tensor | None,
    size_a: tuple[int, int],
    size_b: tuple[int, int],
    max_num_points: int = MAX_NUM_POINTS,
    b: float = SPACING,
    im_size: int = WORK_SIZE,
    min_activation: float = MIN_ACTIVATION,
    return_targets: bool = False,
):
    """DST's cleaning of NBB pairs given in original pixels.

    Args:
        points_a, points_b: ``(N, 2)`` (x, y) in the original pixels of the content (A) and style (B) images.
        activation: ``(N,)`` NBB accumulated activations, or ``None`` (all 1, as DST does without a file).
        size_a, size_b: ``(H, W)`` of the original images. (Points already in DST's working frame, such as DST's
            raw NBB files, go to :func:`clean_grid` with the original sizes.)
        max_num_points, b, im_size, min_activation: DST's defaults 80, 10, 256, 1; ``im_size`` must be the working
            size NBB ran at (``nbb_keypoints(size=...)``).

    Returns ``(points_a, points_b, activation)``: the kept input rows, unchanged, in selection order (decreasing
    activation); with ``return_targets`` also the aligned style points in A's original pixels.
    """
    check(
        max_num_points >= 1 and b >= 0 and im_size >= 8,
        f"clean_points: need max_num_points >= 1, b >= 0, im_size >= 8 (got {max_num_points}, {b}, {im_size})",
    )
    pa, pb, act = _check_pairs(points_a, points_b, activation)
    rows, targets = clean_grid(
        to_grid(pa, size_a, im_size),
        to_grid(pb, size_b, im_size),
        act,
        size_a,
        max_num_points,
        b,
        im_size,
        min_activation,
    )
    out = (pa[rows], pb[rows], act[rows])
    if return_targets:
        out += (from_grid(targets, size_a, im_size),)
    return out
