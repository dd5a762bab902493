"""STROTSS losses (Kolkin, Salavon & Shakhnarovich, CVPR 2019, "Style Transfer by Relaxed Optimal Transport and
Self-Similarity"), shared by the ``strotss`` method and Deformable Style Transfer.

Pure functions work on feature *sets*: ``(N, C)`` tensors, one row per sampled location (hypercolumns from
:mod:`semstyle.hypercolumn`). :class:`StrotssLoss` holds the per-scale targets and computes the whole objective
for an image tensor::

    loss = StrotssLoss(encoder)                       # reference layers and sample counts
    loss.set_targets(content, style)                  # (1,3,H,W), (1,3,Hs,Ws); optional region masks
    loss.content_weight = 16.0                        # α; the method halves it at each finer scale
    total, terms = loss(image)                        # image (1,3,H,W), same size as content

    # DST-style use: content on X, style on the warped W(X), at the same points
    points = loss.draw_points()
    hx = loss.hypercolumns(x, points); hw = loss.hypercolumns(warped, points)
    c = loss.content_term(hx, points); s = loss.style_terms(hw)
    total, terms = loss.combine(c, s)

Objective (reference ``stylize_objectives.py``; paper eq. 6):
``total = (α·ℓ_content + ℓ_remd + m·(ℓ_moment + ℓ_colour / max(α, 1))) / (α + 1 + m)`` with moment weight
``m = 1``, i.e. ``(α·content + style terms) / (α + 2)``. With regions, the terms are averaged over regions.
"""

from __future__ import annotations

import warnings

import kornia
import torch
import torch.nn.functional as F
from torch import nn

from ..core.encoder import check_layers
from ..core.hypercolumn import FEATURE_SCALE, STROTSS_LAYERS, pixel_points, sample_hypercolumns
from ..core.search import CHUNK_ENTRIES, nearest_rows
from ..errors import ImageError, check
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
    return kornia.color.rgb_to_yuv(rgb.T[:, :, None])[:, :, 0].T


def feature_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(C,)`` and covariance ``(C, C)`` (normalised by N, as the reference) of a set ``(N, C)``."""
    mean = x.mean(dim=0)
    centred = x - mean
    return mean, centred.T @ centred / x.shape[0]


class _CovarianceDistance(torch.autograd.Function):
    """``mean|X_cᵀX_c / N − Σ_y|`` of a centred set ``X_c`` ``(N, C)`` against ``Σ_y`` ``(C, C)``.

    Autograd would keep the ``C × C`` product, difference and |·| (2179² floats each) and backpropagate through
    both operands of ``X_cᵀX_c`` (two matmuls). The difference ``D`` is symmetric, so the gradient is
    ``2 X_c sign(D) / (N C²)``: one matmul, and only ``sign(D)`` is kept.
    """

    @staticmethod
    def forward(ctx, centred: torch.Tensor, cov_y: torch.Tensor, bf16: bool) -> torch.Tensor:
        a = centred.bfloat16() if bf16 else centred
        diff = torch.addmm(cov_y.to(a.dtype), a.T, a, beta=-1.0, alpha=1.0 / a.shape[0])  # one fused kernel
        sign = diff.sign()
        ctx.save_for_backward(a, sign)
        return diff.abs().to(centred.dtype).mean()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        a, sign = ctx.saved_tensors
        n, c = a.shape
        grad_x = (a @ sign).to(grad.dtype) * (2.0 * grad / (n * c * c)) if ctx.needs_input_grad[0] else None
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
    dist = 1.0 - (symmetric_gram(xn.T[None])[0] if xn.requires_grad else xn @ xn.T)  # X Xᵀ, one-matmul backward
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


class StrotssLoss(nn.Module):
    """The STROTSS objective for an image, against per-scale content and style targets.

    Args:
        encoder: the shared :class:`semstyle.encoder.VGG19Encoder` (max pooling, as the reference's VGG-16).
        layers: hypercolumn layers (default :data:`semstyle.hypercolumn.STROTSS_LAYERS`).
        content_weight: α (reference: 1.0 × 16 at the coarsest scale, paper Sec. 2.5); set it per scale.
        moment_weight: m (reference: 1.0).
        samples: output/content locations drawn per region and step (reference: 32² = 1024).
        style_samples: style locations per region, drawn once per :meth:`set_targets` (reference: 5 × 1000).
        seed: seeds the location sampling.
        feature_scale: multiplies the VGG features in the hypercolumns (:data:`semstyle.hypercolumn.FEATURE_SCALE`);
            only the moment term depends on it.

    ``layers`` is empty for :class:`semstyle.objective.Objective`: this module runs its own encoder passes.
    """

    layers: tuple[str, ...] = ()

    def __init__(
        self,
        encoder,
        layers=STROTSS_LAYERS,
        content_weight: float = 16.0,
        moment_weight: float = 1.0,
        samples: int = 1024,
        style_samples: int = 5000,
        seed: int = 0,
        feature_scale: float = FEATURE_SCALE,
    ):
        super().__init__()
        check_layers(layers)
        check(
            samples >= 2 and style_samples >= 1,
            f"samples must be >= 2 and style_samples >= 1, got {samples}, {style_samples}",
        )
        self.encoder = encoder
        self.feature_layers = tuple(layers)
        self.content_weight = float(content_weight)
        self.moment_weight = float(moment_weight)
        self.samples, self.style_samples = int(samples), int(style_samples)
        self.feature_scale = float(feature_scale)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.content_features: dict[str, torch.Tensor] = {}
        self.content_image: torch.Tensor | None = None
        self.regions: list[torch.Tensor] = []  # per region: bool (H, W) content mask
        self.bf16 = getattr(encoder, "precision", "fp32") == "bf16"  # big matmuls follow the encoder's precision
        self.style_sets: list[dict] = []  # per region: unit rows, their bf16 copy, YUV colours, moments

    # -- targets -------------------------------------------------------------------------------------------------
    def set_targets(
        self,
        content: torch.Tensor,
        style: torch.Tensor,
        content_masks: torch.Tensor | None = None,
        style_masks: torch.Tensor | None = None,
    ) -> None:
        """Cache the targets for one scale.

        Args:
            content: ``(1, 3, H, W)`` RGB in [0, 1], the size of the images :meth:`forward` will get.
            style: ``(1, 3, Hs, Ws)``.
            content_masks / style_masks: ``(1, K, H, W)`` / ``(1, K, Hs, Ws)`` region masks (both or neither);
                locations in content region k are matched to style region k only.
        """
        check(
            (content_masks is None) == (style_masks is None),
            "guidance needs both a content and a style map",
            ImageError,
        )
        device = self.encoder.device
        content, style = content.to(device), style.to(device)
        regions = _region_masks(content_masks, content.shape[-2:], "content")
        style_regions = _region_masks(style_masks, style.shape[-2:], "style")
        check(
            len(regions) == len(style_regions),
            f"content and style maps have different region counts ({len(regions)} vs {len(style_regions)})",
            ImageError,
        )
        with torch.no_grad():
            self.content_features = self.encoder(content, self.feature_layers)
            self.content_image = content
            style_features = self.encoder(style, self.feature_layers)
            self.regions, self.style_sets = [], []
            for k, (region, style_region) in enumerate(zip(regions, style_regions)):
                if not region.any():  # region absent from the content at this scale: nothing to stylise
                    continue
                check(
                    bool(style_region.any()),
                    f"style map: region {k} of the content map has no pixels in the style map",
                    ImageError,
                )
                points = pixel_points(style_region, self.style_samples, self.generator)
                columns = sample_hypercolumns(style_features, self.feature_layers, points, style, self.feature_scale)[0]
                unit = F.normalize(columns, dim=1)
                self.regions.append(region.to(device))
                self.style_sets.append(
                    {
                        "unit": unit,
                        "search": unit.bfloat16() if self.bf16 else None,
                        "yuv": rgb_to_yuv_rows(columns[:, :3]),
                        "moments": self._moments(columns),
                    }
                )
        check(len(self.regions) > 0, "content map: no region has any pixels", ImageError)

    # -- pieces --------------------------------------------------------------------------------------------------
    def draw_points(self) -> list[torch.Tensor]:
        """Fresh random locations, one ``(N_k, 2)`` tensor per region (``N_k = min(samples, region pixels)``)."""
        self._check_targets()
        return [pixel_points(region, self.samples, self.generator) for region in self.regions]

    def hypercolumns(self, image: torch.Tensor, points: list[torch.Tensor]) -> list[torch.Tensor]:
        """One encoder pass over ``image`` ``(1, 3, H, W)``; its hypercolumns at each region's points, ``(N_k, C)``."""
        self._check_targets()
        check(
            tuple(image.shape[-2:]) == tuple(self.content_image.shape[-2:]),
            f"image is {tuple(image.shape[-2:])} but the targets were set for {tuple(self.content_image.shape[-2:])}",
        )
        features = self.encoder(image, self.feature_layers)
        columns = sample_hypercolumns(features, self.feature_layers, torch.cat(points), image, self.feature_scale)[0]
        return self._split(columns, points)

    def content_term(self, hx: list[torch.Tensor], points: list[torch.Tensor]) -> torch.Tensor:
        """Self-similarity loss of output hypercolumns ``hx`` against the content's at the same points (region mean)."""
        return self._content_term([F.normalize(x, dim=1) for x in hx], points)

    def style_terms(self, hx: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Unweighted ``{"remd", "moment", "color"}`` of output hypercolumns against the style sets (region mean)."""
        return self._style_terms(hx, [F.normalize(x, dim=1) for x in hx])

    def _content_term(self, xn: list[torch.Tensor], points: list[torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            hc = sample_hypercolumns(
                self.content_features, self.feature_layers, torch.cat(points), self.content_image, self.feature_scale
            )[0]
            cn = self._split(F.normalize(hc, dim=1), points)
        return torch.stack([self_similarity_loss(x, c, unit=True) for x, c in zip(xn, cn)]).mean()

    def _style_terms(self, hx: list[torch.Tensor], xn: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        terms = {"remd": [], "moment": [], "color": []}
        for x, x_unit, style in zip(hx, xn, self.style_sets):
            terms["remd"].append(relaxed_emd_unit(x_unit, style["unit"], style["search"]))
            terms["moment"].append(moment_loss(x, style["moments"], self.bf16))
            terms["color"].append(relaxed_emd(rgb_to_yuv_rows(x[:, :3]), style["yuv"], "l2"))
        return {name: torch.stack(values).mean() for name, values in terms.items()}

    def combine(self, content: torch.Tensor, style: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """``(total, {term: weighted value})`` with the reference's normalisation by ``α + 1 + m``."""
        a, m = self.content_weight, self.moment_weight
        norm = a + 1.0 + m
        weighted = {
            "content": a * content / norm,
            "remd": style["remd"] / norm,
            "moment": m * style["moment"] / norm,
            "color": m * style["color"] / max(a, 1.0) / norm,  # palette term fades in as α shrinks
        }
        total = sum(weighted.values())
        return total, {name: float(value.detach()) for name, value in weighted.items()}

    def forward(
        self, image: torch.Tensor, style_image: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss of ``image`` ``(1, 3, H, W)`` at fresh random points, and its weighted terms as floats.

        ``style_image`` (same size; e.g. DST's warped output) takes the style terms instead of ``image``.
        """
        points = self.draw_points()
        hx = self.hypercolumns(image, points)
        xn = [F.normalize(x, dim=1) for x in hx]  # shared by the content and the relaxed EMD terms
        content = self._content_term(xn, points)
        if style_image is None:
            return self.combine(content, self._style_terms(hx, xn))
        return self.combine(content, self.style_terms(self.hypercolumns(style_image, points)))

    # -- helpers -------------------------------------------------------------------------------------------------
    def _moments(self, columns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, cov = feature_moments(columns)
        return mean, cov.bfloat16() if self.bf16 else cov  # cast once, not at every step

    @staticmethod
    def _split(columns: torch.Tensor, points: list[torch.Tensor]) -> list[torch.Tensor]:
        return list(columns.split([p.shape[0] for p in points]))

    def _check_targets(self) -> None:
        if not self.regions:
            raise RuntimeError("StrotssLoss: set_targets() was not called")


__all__ = [
    "FEATURE_SCALE",
    "STROTSS_LAYERS",
    "StrotssLoss",
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
