"""STROTSS losses (Kolkin, Salavon & Shakhnarovich, CVPR 2019, "Style Transfer by Relaxed Optimal Transport and
Self-Similarity"), shared by the ``strotss`` method and Deformable Style Transfer.

Pure functions work on feature *sets*: ``(N, C)`` tensors, one row per sampled location (hypercolumns from
:mod:`semstyle.core.hypercolumn`). The terms follow the loss contract of every semstyle loss and are composed by
:class:`semstyle.engine.Objective`, which computes the features::

    points = SamplePoints(samples=1024, seed=0)        # redrawn before each step, shared by the terms
    content, style = SelfSimilarityLoss(points), StrotssStyleLoss(points)
    objective = Objective(encoder, {"content": (content, 1.0), "style": (style, 1.0)}, before_step=(points.resample,))
    objective.weights.update(strotss_weights(16.0))    # α; the method halves it at each finer scale
    points.set_regions(content_image.shape[-2:])       # optional RegionMasks of the content's map
    content.set_target(objective.features(content_image))
    style.set_target(objective.features(style_image))  # optional RegionMasks of the style's map
    total, terms = objective(image)                    # content, style.remd, style.moment, style.color

    # DST: a second view, the warped image, read at the same points in one batched pass
    objective = Objective(encoder, {..., "style_warped": (style, weights, "warped")}, before_step=(points.resample,))
    total, terms = objective({"image": x, "warped": warped})

Objective (reference ``stylize_objectives.py``; paper eq. 6):
``total = (α·ℓ_content + ℓ_remd + m·(ℓ_moment + ℓ_colour / max(α, 1))) / (α + 1 + m)`` with moment weight
``m = 1``, i.e. ``(α·content + style terms) / (α + 2)``. With regions, the terms are averaged over regions.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from ..conf.vocab import STROTSS_LAYERS
from ..core import aligned
from ..core.encoder import check_layers
from ..core.hypercolumn import FEATURE_SCALE, pixel_points, sample_hypercolumns
from ..core.search import CHUNK_ENTRIES, nearest_rows
from ..core.semantic import RegionMasks
from ..errors import ImageError, check
from .base import Loss
from .gram import symmetric_gram


def _paired_l2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """RMS distance of row ``i`` of ``x`` to row ``i`` of ``y`` (``(N, C)`` each); returns ``(N,)``.

    The square is clamped before the root so that coinciding points have a finite gradient.
    """
    return (x - y).pow(2).mean(dim=1).clamp_min(1e-12).sqrt()


def nearest_neighbours(
    x: torch.Tensor, y: torch.Tensor, cost: str = "cosine", bf16: bool = False, chunk_entries: int = CHUNK_ENTRIES
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of each row's nearest ``y`` (``(N,)``) and of each ``y``'s nearest row of ``x`` (``(M,)``).

    No gradient. ``cost="cosine"`` expects unit rows (see :func:`relaxed_emd`); the search is
    :func:`semstyle.core.search.nearest_rows`. ``bf16`` runs the similarity matmul in bfloat16 (~7x faster on AMX
    CPUs); its output is rounded to ~0.004, so a neighbour within 0.004 of the nearest may be picked instead.
    """
    check(cost in ("cosine", "l2"), f"cost must be cosine or l2, got {cost!r}")
    if cost == "cosine" and bf16:
        x, y = x.bfloat16(), y.bfloat16()
    row_idx, _, col_idx = nearest_rows(x, y, "dot" if cost == "cosine" else "l2", chunk_entries, columns=True)
    return row_idx, col_idx


def _pool_rows(index: torch.Tensor, rows: torch.Tensor, n: int) -> torch.Tensor:
    """``out[i] = Σ_{j: index[j] = i} rows[j]`` for ``rows`` ``(M, C)``; returns ``(n, C)``.

    A CSR one-hot matrix product: on CPU with several threads it is much faster than ``index_add`` (5000 × 2179
    rows: 60 vs 200 ms on two busy cores; equal on one). ``index_add`` is kept when ``rows`` needs a gradient.
    """
    if rows.requires_grad or rows.device.type != "cpu":
        return torch.zeros(n, rows.shape[1], dtype=rows.dtype, device=rows.device).index_add(0, index, rows)
    order = index.argsort()
    crow = torch.zeros(n + 1, dtype=torch.long)
    crow[1:] = torch.bincount(index, minlength=n).cumsum(0)
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore")
        onehot = torch.sparse_csr_tensor(crow, order, torch.ones(index.numel(), dtype=rows.dtype), (n, rows.shape[0]))
        return onehot @ rows


def relaxed_emd_unit(xn: torch.Tensor, yn: torch.Tensor, yn_search: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`relaxed_emd` with cosine cost for sets of unit rows ``xn`` ``(N, C)``, ``yn`` ``(M, C)``.

    ``yn_search`` (e.g. a cached bfloat16 copy of ``yn``) is used for the neighbour search. Both relaxed terms are
    computed with O((N + M)·C) work: ``Σ_j <xn_{i(j)}, yn_j> = Σ_i <xn_i, Z_i>`` with ``Z`` the sum of the ``yn``
    rows whose nearest ``x`` is ``i``, so no ``(M, C)`` gather of ``xn`` is needed.
    """
    search = yn if yn_search is None else yn_search
    row_idx, col_idx = nearest_neighbours(xn.to(search.dtype), search, "cosine")
    forward = 1.0 - (xn * yn[row_idx]).sum(dim=1).mean()
    pooled = _pool_rows(col_idx, yn.to(xn.dtype), xn.shape[0])
    backward = 1.0 - (xn * pooled).sum() / yn.shape[0]
    return torch.maximum(forward, backward)


def relaxed_emd(x: torch.Tensor, y: torch.Tensor, cost: str = "cosine", bf16: bool = False) -> torch.Tensor:
    """Relaxed earth mover's distance of two point sets (paper eq. 3-4): ``max(mean_i min_j C_ij, mean_j min_i C_ij)``.

    Each of the two terms is the optimal transport cost with one marginal constraint dropped, so the result is a
    lower bound of the exact EMD (with uniform weights) and symmetric in ``x`` and ``y``.

    Args:
        x: ``(N, C)``; y: ``(M, C)``.
        cost: ``"cosine"`` (1 − cosine similarity, for features) or ``"l2"`` (RMS distance, for colours).
        bf16: search neighbours in bfloat16 (see :func:`nearest_neighbours`); the loss itself stays float32.
    Returns a scalar. The argmins are found without autograd and the selected costs recomputed with it: that is
    exactly the gradient of the min, and the ``(N, M)`` matrix is never kept for backward (memory O(N + M)).
    """
    check(cost in ("cosine", "l2"), f"cost must be cosine or l2, got {cost!r}")
    if cost == "cosine":
        yn = F.normalize(y, dim=1)
        return relaxed_emd_unit(F.normalize(x, dim=1), yn, yn.bfloat16() if bf16 else None)
    row_idx, col_idx = nearest_neighbours(x, y, "l2")
    return torch.maximum(_paired_l2(x, y[row_idx]).mean(), _paired_l2(x[col_idx], y).mean())


def color_emd(x_rgb: torch.Tensor, y_rgb: torch.Tensor) -> torch.Tensor:
    """Palette term: relaxed EMD of colours ``(N, 3)`` and ``(M, 3)`` (RGB in [0, 1]) in YUV with L2 cost."""
    return relaxed_emd(rgb_to_yuv_rows(x_rgb), rgb_to_yuv_rows(y_rgb), cost="l2")


def rgb_to_yuv_rows(rgb: torch.Tensor) -> torch.Tensor:
    """``(N, 3)`` RGB rows -> ``(N, 3)`` YUV rows (kornia's BT.601 YUV)."""
    import kornia  # here, not at the top: importing kornia is 0.3 s of every process's start-up

    return kornia.color.rgb_to_yuv(rgb.T[:, :, None])[:, :, 0].T


def feature_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(C,)`` and covariance ``(C, C)`` (normalised by N, as the reference) of a set ``(N, C)``."""
    mean = x.mean(dim=0)
    centred = x - mean
    return mean, aligned.mm(centred.T, centred) / x.shape[0]


class _CovarianceDistance(torch.autograd.Function):
    """``mean|X_cᵀX_c / N − Σ_y|`` of a centred set ``X_c`` ``(N, C)`` against ``Σ_y`` ``(C, C)``.

    Autograd would keep the ``C × C`` product, difference and |·| (2179² floats each) and backpropagate through
    both operands of ``X_cᵀX_c`` (two matmuls). The difference ``D`` is symmetric, so the gradient is
    ``2 X_c sign(D) / (N C²)``: one matmul, and only ``sign(D)`` is kept.
    """

    @staticmethod
    def forward(ctx, centred: torch.Tensor, cov_y: torch.Tensor, bf16: bool) -> torch.Tensor:
        a = centred.bfloat16() if bf16 else centred
        diff = aligned.addmm(cov_y.to(a.dtype), a.T, a, beta=-1.0, alpha=1.0 / a.shape[0])  # one fused kernel
        sign = diff.sign()
        ctx.save_for_backward(a, sign)
        return diff.abs().to(centred.dtype).mean()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        a, sign = ctx.saved_tensors
        n, c = a.shape
        grad_x = aligned.mm(a, sign).to(grad.dtype) * (2.0 * grad / (n * c * c)) if ctx.needs_input_grad[0] else None
        grad_cov = -sign.to(grad.dtype) * (grad / (c * c)) if ctx.needs_input_grad[1] else None
        return grad_x, grad_cov, None


def moment_loss(x: torch.Tensor, target, bf16: bool = False) -> torch.Tensor:
    """Moment matching (paper eq. 5): ``mean|μ_x − μ_y| + mean|Σ_x − Σ_y|``.

    ``x`` is ``(N, C)``; ``target`` is a set ``(M, C)`` or its precomputed :func:`feature_moments`. Scale-dependent:
    feed features in the reference's units (:data:`semstyle.hypercolumn.FEATURE_SCALE`). ``bf16`` runs the
    ``C × C`` product in bfloat16 (differences rounded to ~0.4 %; ~4x faster on AMX CPUs).
    """
    mean_y, cov_y = feature_moments(target) if isinstance(target, torch.Tensor) else target
    mean_x = x.mean(dim=0)
    return (mean_x - mean_y).abs().mean() + _CovarianceDistance.apply(x - mean_x, cov_y, bf16)


def self_similarity_matrix(x: torch.Tensor, unit: bool = False) -> torch.Tensor:
    """Cosine-distance matrix of a set ``(N, C)``, each column divided by its sum; returns ``(N, N)``.

    ``unit=True`` says the rows are already unit vectors (skips the normalisation).
    """
    xn = x if unit else F.normalize(x, dim=1)
    if xn.requires_grad:  # X Xᵀ with a one-matmul backward, whose (N, C) output wants aligned rows
        xn = aligned.pad_columns(xn)
        dist = 1.0 - symmetric_gram(xn.T[None])[0]
    else:
        dist = 1.0 - xn @ xn.T
    return dist / dist.sum(dim=0, keepdim=True).clamp_min(1e-8)


def self_similarity_loss(x: torch.Tensor, content: torch.Tensor, unit: bool = False) -> torch.Tensor:
    """Content loss (paper eq. 2): ``(1/N) Σ_ij |D^X_ij − D^C_ij|`` of the column-normalised self-distance
    matrices of output and content features at the same ``N`` locations (``(N, C)`` each; ``unit=True`` when both
    are already unit rows). The reference writes it as ``mean|·| × N``.

    Invariant to any per-set rescaling of the features: only the structure of the output is constrained.
    """
    check(
        x.shape[0] == content.shape[0],
        f"self-similarity needs the same locations, got {x.shape[0]} and {content.shape[0]}",
    )
    with torch.no_grad():
        target = self_similarity_matrix(content, unit)
    return (self_similarity_matrix(x, unit) - target).abs().sum() / x.shape[0]


def _region_masks(masks: torch.Tensor | None, shape, what: str) -> list[torch.Tensor]:
    """``(1, K, H, W)`` soft or hard masks -> K bool ``(H, W)`` masks (> 0.5; > 0 where nothing passes 0.5)."""
    if masks is None:
        return [torch.ones(shape, dtype=torch.bool)]
    check(
        masks.ndim == 4 and masks.shape[0] == 1 and tuple(masks.shape[-2:]) == tuple(shape),
        f"{what} masks must be (1, K, {shape[0]}, {shape[1]}), got {tuple(masks.shape)}",
        ImageError,
    )
    out = []
    for m in masks[0].detach().cpu():
        hard = m > 0.5
        out.append(hard if hard.any() else m > 0)
    return out


class SamplePoints:
    """Where the STROTSS terms read the image being optimised (paper Sec. 2.4): per region, ``samples`` random pixel
    locations drawn afresh at each step, shared by the content and style terms, and by DST's two views of the image
    (``X`` and ``W(X)``, Kim et al. 2020).

    Give :meth:`resample` to :class:`semstyle.engine.Objective` as a ``before_step`` hook. One generator draws both
    these points and the style terms' fixed samples, in the reference's order.

    Args:
        samples: locations per region and step (reference: 32² = 1024).
        seed: seeds the location sampling.
    """

    def __init__(self, samples: int = 1024, seed: int = 0):
        check(samples >= 2, f"samples must be >= 2, got {samples}")
        self.samples = int(samples)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.regions: list[torch.Tensor] = []  # bool (H, W) of each region present at this scale
        self.kept: list[int] = []  # their indices among the map's regions
        self.count = 0  # regions of the map (1 without one)
        self.shape: tuple[int, int] | None = None
        self.points: list[torch.Tensor] = []

    def set_regions(self, shape, masks: RegionMasks | None = None, device=None) -> None:
        """The regions of the image being optimised at this scale (``shape`` ``(H, W)``); None: one region."""
        shape = tuple(shape)
        regions = _region_masks(None if masks is None else masks.at(shape), shape, "content")
        self.count, self.shape = len(regions), shape
        self.kept = [k for k, region in enumerate(regions) if region.any()]  # absent at this scale: nothing to stylise
        check(len(self.kept) > 0, "content map: no region has any pixels", ImageError)
        self.regions = [regions[k].to(device) for k in self.kept]
        self.points = []

    def resample(self) -> None:
        """Fresh locations, one ``(N_k, 2)`` tensor per region (``N_k = min(samples, region pixels)``)."""
        check(bool(self.regions), "SamplePoints: set_regions() was not called")
        self.points = [pixel_points(region, self.samples, self.generator) for region in self.regions]

    def columns(self, features: dict[str, torch.Tensor], layers, feature_scale: float) -> list[torch.Tensor]:
        """Hypercolumns of ``features`` (with ``"image"``, ``(1, 3, H, W)``) at the current points, ``(N_k, C)``
        per region."""
        image = features["image"]
        check(
            tuple(image.shape[-2:]) == self.shape,
            f"image is {tuple(image.shape[-2:])} but the regions were set for {self.shape}",
        )
        if not self.points:
            self.resample()
        columns = sample_hypercolumns(features, layers, torch.cat(self.points), image, feature_scale)[0]
        return list(columns.split([p.shape[0] for p in self.points]))


class SelfSimilarityLoss(Loss):
    """STROTSS's content loss (paper eq. 5): the mean absolute difference of the cosine self-similarity matrices of
    the image's and the content's hypercolumns at the same :class:`SamplePoints`, averaged over regions.

    Args:
        points: the shared :class:`SamplePoints`.
        layers: hypercolumn layers (default :data:`semstyle.conf.vocab.STROTSS_LAYERS`).
        feature_scale: multiplies the VGG features (:data:`semstyle.core.hypercolumn.FEATURE_SCALE`); the cosine
            terms do not depend on it.

    ``set_target`` takes the content's features with ``"image"`` (the size of the image being optimised).
    """

    def __init__(self, points: SamplePoints, layers=STROTSS_LAYERS, feature_scale: float = FEATURE_SCALE):
        super().__init__()
        check_layers(layers)
        self.points, self.layers, self.feature_scale = points, tuple(layers), float(feature_scale)
        self.target: dict[str, torch.Tensor] = {}

    def set_target(self, features: dict[str, torch.Tensor], masks=None) -> None:
        self._check_masks(masks)
        self.target = {layer: features[layer].detach() for layer in (*self.layers, "image")}

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        if not self.target:
            raise RuntimeError("SelfSimilarityLoss: set_target() was not called")
        with torch.no_grad():
            cn = [F.normalize(c, dim=1) for c in self.points.columns(self.target, self.layers, self.feature_scale)]
        return _batch_mean(features, lambda image: self._image_loss(image, cn))

    def _image_loss(self, features: dict[str, torch.Tensor], cn: list[torch.Tensor]) -> torch.Tensor:
        xn = [F.normalize(x, dim=1) for x in self.points.columns(features, self.layers, self.feature_scale)]
        return torch.stack([self_similarity_loss(x, c, unit=True) for x, c in zip(xn, cn)]).mean()


class StrotssStyleLoss(Loss):
    """STROTSS's style terms (paper eqs. 2-4 and 6), unweighted and averaged over regions, as a container:
    ``forward`` returns ``{"remd": relaxed EMD of the hypercolumns (cosine cost), "moment": mean and covariance
    distance, "color": relaxed EMD of the YUV colours}`` of the image at the shared :class:`SamplePoints`.

    Args:
        points: the shared :class:`SamplePoints` (its regions set first: the style's regions follow them).
        layers / feature_scale: as :class:`SelfSimilarityLoss`; the moment term depends on the scale.
        style_samples: style locations per region, drawn once per :meth:`set_target` (reference: 5 × 1000).
        bf16: search neighbours and compare covariances in bfloat16 (the encoder's precision; fast where the CPU
            has bf16 units).

    The reference's weights (``stylize_objectives.py``; paper eq. 6) are the objective's:
    ``total = (α·content + remd + m·(moment + color / max(α, 1))) / (α + 1 + m)``, ``m = 1``.
    """

    region_wise = True

    def __init__(
        self,
        points: SamplePoints,
        layers=STROTSS_LAYERS,
        style_samples: int = 5000,
        feature_scale: float = FEATURE_SCALE,
        bf16: bool = False,
    ):
        super().__init__()
        check_layers(layers)
        check(style_samples >= 1, f"style_samples must be >= 1, got {style_samples}")
        self.points, self.layers, self.feature_scale = points, tuple(layers), float(feature_scale)
        self.style_samples, self.bf16 = int(style_samples), bool(bf16)
        self.style_sets: list[dict] = []  # per kept region: unit rows, their bf16 copy, YUV colours, moments

    @torch.no_grad()
    def set_target(self, features: dict[str, torch.Tensor], masks: RegionMasks | None = None) -> None:
        """The style's features with ``"image"`` ``(1, 3, Hs, Ws)``, and its region masks (as many regions as the
        points' map); style region k serves the image's region k."""
        style = features["image"]
        regions = _region_masks(
            None if masks is None else RegionMasks.of(masks).at(style.shape[-2:]), style.shape[-2:], "style"
        )
        check(
            len(regions) == self.points.count,
            f"content and style maps have different region counts ({self.points.count} vs {len(regions)})",
            ImageError,
        )
        self.style_sets = []
        for k in self.points.kept:
            check(
                bool(regions[k].any()),
                f"style map: region {k} of the content map has no pixels in the style map",
                ImageError,
            )
            points = pixel_points(regions[k], self.style_samples, self.points.generator)
            columns = sample_hypercolumns(features, self.layers, points, style, self.feature_scale)[0]
            unit = F.normalize(columns, dim=1)
            mean, cov = feature_moments(columns)
            self.style_sets.append(
                {
                    "unit": unit,
                    "search": unit.bfloat16() if self.bf16 else None,
                    "yuv": rgb_to_yuv_rows(columns[:, :3]),
                    "moments": (mean, cov.bfloat16() if self.bf16 else cov),  # cast once, not at every step
                }
            )

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not self.style_sets:
            raise RuntimeError("StrotssStyleLoss: set_target() was not called")
        return _batch_mean(features, self._image_terms)

    def _image_terms(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        hx = self.points.columns(features, self.layers, self.feature_scale)
        terms = {"remd": [], "moment": [], "color": []}
        for x, style in zip(hx, self.style_sets):
            terms["remd"].append(relaxed_emd_unit(F.normalize(x, dim=1), style["unit"], style["search"]))
            terms["moment"].append(moment_loss(x, style["moments"], self.bf16))
            terms["color"].append(relaxed_emd(rgb_to_yuv_rows(x[:, :3]), style["yuv"], "l2"))
        return {name: torch.stack(values).mean() for name, values in terms.items()}


def _batch_mean(features: dict[str, torch.Tensor], loss):
    """``loss`` of each image of a batch ``{layer: (B, C, h, w)}`` read at the same points, averaged (a dict of
    terms: each term averaged); a batch of one is scored as it is."""
    batch = len(features["image"])
    if batch == 1:
        return loss(features)
    values = [loss({layer: f[b : b + 1] for layer, f in features.items()}) for b in range(batch)]
    if isinstance(values[0], dict):
        return {name: torch.stack([v[name] for v in values]).mean() for name in values[0]}
    return torch.stack(values).mean()


def strotss_weights(content_weight: float, moment_weight: float = 1.0, color_scale: float = 1.0) -> dict:
    """The objective's weights of :class:`SelfSimilarityLoss` (``"content"``) and :class:`StrotssStyleLoss`
    (``"style"``), the reference's (paper eq. 6): each term over ``α + 1 + m``; the colour term fades in as α
    shrinks (÷ max(α, 1)). ``color_scale`` multiplies the colour term (DST's units, methods/dst.py)."""
    a, m = float(content_weight), float(moment_weight)
    norm = a + 1.0 + m
    return {
        "content": a / norm,
        "style": {"remd": 1.0 / norm, "moment": m / norm, "color": color_scale * m / max(a, 1.0) / norm},
    }


__all__ = [
    "FEATURE_SCALE",
    "STROTSS_LAYERS",
    "SamplePoints",
    "SelfSimilarityLoss",
    "StrotssStyleLoss",
    "strotss_weights",
    "color_emd",
    "feature_moments",
    "moment_loss",
    "nearest_neighbours",
    "relaxed_emd",
    "relaxed_emd_unit",
    "rgb_to_yuv_rows",
    "self_similarity_loss",
    "self_similarity_matrix",
]
