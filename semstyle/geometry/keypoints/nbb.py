"""Neural Best-Buddies: sparse cross-domain correspondences (Aberman et al., SIGGRAPH 2018).

Coarse to fine over VGG-19 levels relu5_1 -> relu1_1. At each level, within each pair of search regions (the whole
maps at relu5_1; at a finer level, for every pair (p, q) found one level up, the windows of +-radius cells around
2p in A and 2q in B):

1. *common appearance* (§4.2): the features of both regions get the average of their per-channel mean and standard
   deviation, so that a photo and a painting become comparable;
2. each cell's patch descriptor is its neighbourhood of per-pixel L2-normalised features, and the similarity of two
   cells is the sum of cosines over the patch; one batched matrix product per group of regions;
3. *best buddies* are mutual nearest neighbours inside the region pair; a pair survives when the min-max stretched
   squared feature norm is >= tau in both images, and its activation (mean of the stretched feature norms at the
   two points) adds to its parent's.

Both images are resized (aspect kept) to ``size`` on their long side and processed at their own sizes, so
results come back in each image's original pixel coordinates, (x, y) with pixel centres at integers. The final
pairs lie on the working pixel grid (stride x cell index, as the reference code writes them), so that the integer
text files and DST's cleaning (:mod:`.clean`) see them exactly.

Differences from the reference code (kfiraberman/neural_best_buddies): the common appearance is the paper's
mean/std matching instead of the code's feature inversion of the coarser level (an Adam optimisation per level,
most of its ~100 s run time), the relu5_1 search is global (the paper) instead of a +-3 cell window around the
identity (the code), nearest neighbours are searched inside the region pair (the paper) rather than in a window
around the parent's mapping, and a point of A matched twice keeps its best pair instead of the first one.
Everything is scale-free (cosines, min-max stretches), so the Caffe VGG units need no rescaling.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ...conf.keypoints import NBB_SIZE
from ...core.encoder import layer_stride, vgg19_encoder
from ...core.image import as_image, resize
from ...errors import ConfigError, check
from .select import best_per_group, inside_border, kmeans_select, unique_points

LEVELS = ("relu5_1", "relu4_1", "relu3_1", "relu2_1", "relu1_1")
# Defaults of the reference code (algorithms/neural_best_buddies.py, options/options.py).
PATCH_SIZES = (5, 5, 3, 3, 3)
SEARCH_RADII = (3, 3, 2, 2, 2)
TAU = 0.05
BORDER = 7  # px at the working size
FAST_LEVELS = 4  # --fast stops at relu2_1 (L_final = 2), as DST runs it
DEFAULT_SIZE = NBB_SIZE
CHUNK_BYTES = 64 * 2**20  # bound on the working tensors of one group of region pairs


@dataclass
class LevelMatches:
    """Pairs surviving one level, in original pixels: ``points_a``/``points_b`` ``(N, 2)`` (x, y), ``activation``."""

    layer: str
    points_a: torch.Tensor
    points_b: torch.Tensor
    activation: torch.Tensor


@dataclass
class Correspondences:
    """NBB result: ``points_a``, ``points_b`` ``(N, 2)`` (x, y) in each image's original pixels, ``activation``
    ``(N,)`` (accumulated over levels, up to one per level), sorted by decreasing activation.

    Unpacks as ``points_a, points_b, activation = nbb_keypoints(...)``.
    """

    points_a: torch.Tensor
    points_b: torch.Tensor
    activation: torch.Tensor
    size_a: tuple[int, int]
    size_b: tuple[int, int]
    levels: list[LevelMatches] = field(default_factory=list)
    candidates: int = 0  # pairs left after border and uniqueness pruning, before the k-means selection

    def __iter__(self):
        return iter((self.points_a, self.points_b, self.activation))

    def __len__(self) -> int:
        return len(self.activation)


def _as_image(image, what: str) -> torch.Tensor:
    if isinstance(image, torch.Tensor) and image.ndim == 3:  # NBB also takes a single (3, H, W) image
        image = image[None]
    return as_image(image, what)


def _stretch(x: torch.Tensor) -> torch.Tensor:
    """Min-max stretch to [0, 1] (zeros for a constant map), NBB's ``stretch_tensor_0_to_1``."""
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)


def _cells_to_pixels(cells: torch.Tensor, width: int, stride: int) -> torch.Tensor:
    """Flat cell indices of a level map -> (x, y) of the cell centres in working-image pixels."""
    xy = torch.stack([cells % width, cells // width], 1).float()
    return (xy + 0.5) * stride - 0.5


def _to_original(points: torch.Tensor, work: tuple[int, int], orig: tuple[int, int]) -> torch.Tensor:
    """Working-image (x, y) -> original-image (x, y): per-axis scale about pixel edges, clamped into the image."""
    scale = torch.tensor([orig[1] / work[1], orig[0] / work[0]])
    out = (points + 0.5) * scale - 0.5
    return torch.minimum(out.clamp_min(0), torch.tensor([orig[1] - 1.0, orig[0] - 1.0]))


def _crops(padded: torch.Tensor, y0: torch.Tensor, x0: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Windows ``(K, C, h, w)`` of a padded map ``(C, H, W)`` with top-left corners ``(y0, x0)`` (each ``(K,)``)."""
    rows = y0[:, None] + torch.arange(h, device=padded.device)
    cols = x0[:, None] + torch.arange(w, device=padded.device)
    return padded[:, rows[:, :, None], cols[:, None, :]].permute(1, 0, 2, 3)


def _pad(feat: torch.Tensor, pad: int) -> torch.Tensor:
    """Reflect padding like the reference code (replicate when the map is too small to reflect)."""
    mode = "reflect" if min(feat.shape[1:]) > pad else "replicate"
    return F.pad(feat[None], (pad,) * 4, mode=mode)[0]


def _window_stats(feat: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of every ``h x w`` window of ``feat`` ``(C, H, W)``: two ``(C, H-h+1, W-w+1)`` maps."""
    mean = F.avg_pool2d(feat[None], (h, w), stride=1)[0]
    return mean, (F.avg_pool2d(feat[None].square(), (h, w), stride=1)[0] - mean.square()).clamp_min(0).sqrt()


def _at(stats, y0: torch.Tensor, x0: torch.Tensor) -> list[torch.Tensor]:
    """The window statistics of windows with top-left corners (y0, x0), as ``(K, C, 1, 1)``."""
    return [m[:, y0, x0].T[..., None, None] for m in stats]


def _appearance_gain(mu_a, sd_a, mu_b, sd_b):
    """Affine maps (gain, bias) ``(K, C, 1, 1)`` taking each region's channel mean/std to the pair's average."""
    mu, sd = (mu_a + mu_b) / 2, (sd_a + sd_b) / 2
    # A channel nearly constant in one region must not be blown up into noise: bound the gain at 100x.
    floor = 1e-2 * sd.mean(1, keepdim=True) + 1e-12
    gain_a, gain_b = sd / sd_a.clamp_min(floor), sd / sd_b.clamp_min(floor)
    return (gain_a, mu - mu_a * gain_a), (gain_b, mu - mu_b * gain_b)


def _best_buddies(fa, fb, win_a, win_b, patch: int):
    """Mutual nearest neighbours inside each region pair.

    ``fa``/``fb``: level features ``(C, H, W)``; ``win_a``/``win_b``: ``(y0, x0, h, w)`` with ``y0, x0`` of shape
    ``(K,)`` (one window per region pair). Returns ``(pair index, flat cell in A, flat cell in B)``, each ``(M,)``.

    Patch similarity = sum over the patch offsets o of cos(fa(p + o), fb(q + o)). Rather than unfolding
    ``C * patch^2`` descriptors, take all per-cell cosines between the two padded windows with one batched matrix
    product and sum its shifted diagonals (fewer multiplications than the descriptors' product, and no im2col).
    """
    pad = patch // 2
    (ya, xa, ha, wa), (yb, xb, hb, wb) = win_a, win_b
    width_a, width_b = fa.shape[2], fb.shape[2]
    ea, eb = (ha + 2 * pad, wa + 2 * pad), (hb + 2 * pad, wb + 2 * pad)
    pa_map, pb_map = _pad(fa, pad), _pad(fb, pad)
    stats_a, stats_b = _window_stats(fa, ha, wa), _window_stats(fb, hb, wb)
    per_pair = 4 * (3 * ea[0] * ea[1] * eb[0] * eb[1] + 3 * fa.shape[0] * (ea[0] * ea[1] + eb[0] * eb[1]))
    chunk = max(1, CHUNK_BYTES // per_pair)
    out = []
    for s in range(0, len(ya), chunk):
        sl = slice(s, s + chunk)
        (ga, ba), (gb, bb) = _appearance_gain(*_at(stats_a, ya[sl], xa[sl]), *_at(stats_b, yb[sl], xb[sl]))
        ca = torch.addcmul(ba, _crops(pa_map, ya[sl], xa[sl], *ea), ga)
        cb = torch.addcmul(bb, _crops(pb_map, yb[sl], xb[sl], *eb), gb)
        ca, cb = F.normalize(ca, dim=1).flatten(2), F.normalize(cb, dim=1).flatten(2)
        cos = torch.bmm(ca.transpose(1, 2), cb).view(-1, *ea, *eb)  # (k, Ha, Wa, Hb, Wb) per-cell cosines
        # Sum of the patch's shifted diagonals, separably: rows then columns (2 p instead of p^2 slices).
        rows = cos[:, :ha, :, :hb].clone()
        for o in range(1, patch):
            rows += cos[:, o : o + ha, :, o : o + hb]
        sim = rows[:, :, :wa, :, :wb].clone()
        for o in range(1, patch):
            sim += rows[:, :, o : o + wa, :, o : o + wb]
        sim = sim.reshape(-1, ha * wa, hb * wb)
        a2b, b2a = sim.argmax(2), sim.argmax(1)
        mutual = b2a.gather(1, a2b) == torch.arange(ha * wa, device=sim.device)
        k, u = mutual.nonzero(as_tuple=True)
        v = a2b[k, u]
        k = k + s
        cell_a = (ya[k] + u // wa) * width_a + xa[k] + u % wa
        cell_b = (yb[k] + v // wb) * width_b + xb[k] + v % wb
        out.append((k, cell_a, cell_b))
    return tuple(torch.cat(t) for t in zip(*out))


def _child_windows(cells: torch.Tensor, parent_width: int, size: tuple[int, int], radius: int):
    """Search window at the finer level for each parent cell: rows/cols ``2 i - radius .. 2 i + radius`` (the
    reference code's ``extract_receptive_field``), shifted to stay inside the map."""
    h, w = size
    wh, ww = min(2 * radius + 1, h), min(2 * radius + 1, w)
    y0 = (2 * (cells // parent_width) - radius).clamp(0, h - wh)
    x0 = (2 * (cells % parent_width) - radius).clamp(0, w - ww)
    return y0, x0, wh, ww


def _one_to_one(ca, cb, act):
    """Best buddies are one-to-one: where overlapping windows matched a cell twice, keep its best pair."""
    sel = best_per_group(ca, act)
    ca, cb, act = ca[sel], cb[sel], act[sel]
    sel = best_per_group(cb, act)
    return ca[sel], cb[sel], act[sel]


def nbb_keypoints(
    image_a,
    image_b,
    k: int | None = None,
    fast: bool = False,
    size: int = DEFAULT_SIZE,
    tau: float = TAU,
    border: float = BORDER,
    k_per_level: int | None = None,
    encoder=None,
    precision: str = "auto",
    device: str = "auto",
    progress: bool = False,
    conv: str = "auto",
) -> Correspondences:
    """Neural Best-Buddies between two images.

    Args:
        image_a, image_b: RGB tensors ``(1, 3, H, W)`` in [0, 1] or image paths; sizes and aspect ratios may differ.
        k: keep at most ``k`` pairs by k-means on (xA, yA, xB, yB), best activation per cluster (NBB's
            ``k_final``); ``None`` returns every pair (what DST's cleaning expects).
        fast: stop at relu2_1 (DST's ``--fast``): about 40 % less time, points on a 2 px grid.
        size: working long side in px (224 in NBB's demo, 256 in DST).
        tau: activation threshold (0.05, NBB). border: pairs closer than this (working px) to an edge are dropped
            (7, NBB). k_per_level: optional k-means pruning after every level (NBB's ``k_per_level``).
        encoder: a :class:`~semstyle.encoder.VGG19Encoder` (default: the shared max-pooling one at ``precision``,
            ``device`` and ``conv``, see :func:`~semstyle.core.encoder.vgg19_encoder`).
        progress: tqdm bar over the levels.

    Returns a :class:`Correspondences` (points in original pixels, (x, y)).
    """
    check(isinstance(size, int) and size >= 32, f"size: {size!r} must be an integer >= 32 (working long side, px)")
    check(0 <= tau < 1, f"tau: {tau!r} must be in [0, 1)")
    check(k is None or (isinstance(k, int) and k >= 1), f"k: {k!r} must be a positive integer or None (all pairs)")
    check(
        k_per_level is None or (isinstance(k_per_level, int) and k_per_level >= 1),
        f"k_per_level: {k_per_level!r} must be a positive integer or None",
    )
    image_a, image_b = _as_image(image_a, "image A"), _as_image(image_b, "image B")
    orig_a, orig_b = tuple(image_a.shape[-2:]), tuple(image_b.shape[-2:])
    work_a, work_b = resize(image_a, size), resize(image_b, size)
    for name, img in (("image A", work_a), ("image B", work_b)):
        if min(img.shape[-2:]) < 16:
            raise ConfigError(
                f"{name}: too elongated for size={size} (short side {min(img.shape[-2:])} px < 16 at "
                "the working size); raise size or crop the image"
            )
    enc = encoder if encoder is not None else vgg19_encoder("max", precision, device, conv=conv)
    levels = LEVELS[: FAST_LEVELS if fast else len(LEVELS)]
    with torch.no_grad():
        feats_a = enc(work_a.to(enc.device), levels)
        feats_b = enc(work_b.to(enc.device), levels)
    work_hw_a, work_hw_b = tuple(work_a.shape[-2:]), tuple(work_b.shape[-2:])

    records, ca = [], None
    cb = act = None  # the previous level's matches and their activations (set at the end of each level)
    prev_w_a = prev_w_b = 0
    bar = tqdm(levels, desc="NBB levels", disable=not progress, leave=False, dynamic_ncols=True)
    for i, layer in enumerate(bar):
        fa, fb = feats_a[layer][0].float().contiguous(), feats_b[layer][0].float().contiguous()
        (ha, wa), (hb, wb) = fa.shape[1:], fb.shape[1:]
        patch, radius = PATCH_SIZES[i], SEARCH_RADII[i]
        if ca is None:  # coarsest level: one region pair, the whole maps
            zero = torch.zeros(1, dtype=torch.long, device=fa.device)
            win_a, win_b, parent_act = (zero, zero, ha, wa), (zero, zero, hb, wb), torch.zeros(1, device=fa.device)
        else:
            win_a = _child_windows(ca, prev_w_a, (ha, wa), radius)
            win_b = _child_windows(cb, prev_w_b, (hb, wb), radius)
            parent_act = act
        pair, ca, cb = _best_buddies(fa, fb, win_a, win_b, patch)
        resp_a, resp_b = _stretch(fa.norm(dim=0)).flatten(), _stretch(fb.norm(dim=0)).flatten()
        strong_a = _stretch(fa.pow(2).sum(0)).flatten() >= tau
        strong_b = _stretch(fb.pow(2).sum(0)).flatten() >= tau
        act = parent_act[pair] + 0.5 * (resp_a[ca] + resp_b[cb])
        keep = strong_a[ca] & strong_b[cb]
        ca, cb, act = _one_to_one(ca[keep], cb[keep], act[keep])
        stride = layer_stride(layer)
        pa, pb = _cells_to_pixels(ca, wa, stride).cpu(), _cells_to_pixels(cb, wb, stride).cpu()
        if k_per_level is not None and len(act) > k_per_level:
            sel = kmeans_select(pa, pb, act.cpu(), k_per_level).to(ca.device)
            ca, cb, act, pa, pb = ca[sel], cb[sel], act[sel], pa[sel.cpu()], pb[sel.cpu()]
        records.append(
            LevelMatches(layer, _to_original(pa, work_hw_a, orig_a), _to_original(pb, work_hw_b, orig_b), act.cpu())
        )
        prev_w_a, prev_w_b = wa, wb
        bar.set_postfix(pairs=len(act))
        if len(act) == 0:
            break
    bar.close()

    act = act.cpu()
    if len(act):  # final points on the working pixel grid, as DST's NBB writes them (stride x cell index: with
        # --fast the top-left pixel of a 2x2 cell, not its centre), so they survive the integer text files exactly
        pa, pb = (ca.cpu() % wa * stride, ca.cpu() // wa * stride), (cb.cpu() % wb * stride, cb.cpu() // wb * stride)
        pa, pb = torch.stack(pa, 1).float(), torch.stack(pb, 1).float()
    keep = inside_border(pa, work_hw_a, border) & inside_border(pb, work_hw_b, border)
    pa, pb, act = pa[keep], pb[keep], act[keep]
    sel = unique_points(pa, act)
    pa, pb, act = pa[sel], pb[sel], act[sel]
    candidates = len(act)
    if k is not None:
        sel = kmeans_select(pa, pb, act, k)
        pa, pb, act = pa[sel], pb[sel], act[sel]
    return Correspondences(
        _to_original(pa, work_hw_a, orig_a),
        _to_original(pb, work_hw_b, orig_b),
        act,
        orig_a,
        orig_b,
        records,
        candidates,
    )
