"""Patch-based MRF style loss (Li & Wand 2016, "Combining Markov Random Fields and Convolutional Neural Networks
for Image Synthesis", CNNMRF), with optional semantic channels (Champandard 2016, neural doodle).

For every k×k patch Φ_i(x) of the synthesis features, find the style patch with the highest normalised
cross-correlation (NCC), then pull Φ_i(x) towards it:  E = Σ_i ‖Φ_i(x) − Φ_NN(i)(s)‖²  (eq. 2 of Li & Wand), taken
here as a mean over patch elements (neural-doodle's ``T.mean((patches - best)**2)``) so weights do not depend
on the image size.

The NCC search is one convolution whose filters are the L2-normalised style patches (CNNMRF's ``MRFMM`` layer,
neural-doodle's ``nn`` layers), done as im2col + GEMM and chunked over the style patches so the score block never
exceeds ``chunk_elements`` (default 2^24 scores: 32 MiB in bf16, 64 MiB in fp32). Semantic guidance follows neural-doodle: the score is
``NCC(features) + semantic_weight · NCC(map channels)``, i.e. the NCC of feature and map patches each normalised
on its own and concatenated with the map part scaled by the semantic weight; the loss itself reads features only.

Shapes: features ``(1, C, h, w)``; masks ``(1, K, h, w)``; patches ``(N, C, k, k)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import layer_weights

CHUNK_ELEMENTS = 1 << 24  # scores per chunk of the NCC search: 16.8 M (64 MiB fp32) -> ~1400 style patches at 512 px
EPS = 1e-8


def extract_patches(features: torch.Tensor, patch_size: int = 3, stride: int = 1) -> torch.Tensor:
    """All ``patch_size``² patches of ``(1, C, h, w)`` at ``stride``, row-major: ``(N, C, k, k)``."""
    c = features.shape[1]
    cols = F.unfold(features, patch_size, stride=stride)  # (1, C·k², N)
    return cols[0].t().reshape(-1, c, patch_size, patch_size)


def patch_norms(features: torch.Tensor, patch_size: int = 3, stride: int = 1) -> torch.Tensor:
    """L2 norm of every patch of ``(1, C, h, w)``: ``(1, 1, h', w')`` with ``h' = (h - k)//stride + 1``."""
    square = features.float().pow(2).sum(1, keepdim=True)
    return (F.avg_pool2d(square, patch_size, stride=stride) * patch_size**2).clamp_min(0).sqrt()


def ncc_patches(features: torch.Tensor, patch_size: int = 3, stride: int = 1, masks: torch.Tensor | None = None,
                mask_scale: float | None = None, dtype: torch.dtype = torch.float32,
                out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Patches as rows ready for normalised cross-correlation: ``(rows (L, D), feature norms (L,))``.

    Each row is the feature patch divided by its L2 norm, followed (when ``masks`` ``(1, K, h, w)`` are given) by
    the mask patch divided by its own norm and one constant: ``D = C·k² (+ K·k² + 1)``. Style rows are built with
    ``mask_scale=None`` (mask part as is, constant 1); synthesis rows with ``mask_scale`` = the semantic weight w
    (mask part × w, constant −w). Their dot product is ``NCC(features) + w · (NCC(masks) − 1)``: neural-doodle's
    matching score minus w, so a patch matched inside its own region scores in [−1, 1], where bf16 GEMM outputs
    keep ~3 significant digits instead of ~2 around w + 1.

    ``out`` ``(L, D)``: write the feature part into ``out[:, :C·k²]`` and leave the rest (a cached mask part).
    """
    ck2 = features.shape[1] * patch_size**2
    norms = patch_norms(features, patch_size, stride).flatten()
    cols = F.unfold(features.to(dtype), patch_size, stride=stride)[0]  # (C·k², L)
    mask_cols = None
    if masks is not None:
        mask_cols = F.unfold(masks.to(dtype), patch_size, stride=stride)[0]
    if out is None:
        extra = 0 if mask_cols is None else len(mask_cols) + 1
        out = torch.empty(cols.shape[1], ck2 + extra, dtype=dtype, device=cols.device)
    torch.mul(cols.t(), (1.0 / norms.clamp_min(EPS)).to(dtype)[:, None], out=out[:, :ck2])  # one transposing pass
    if mask_cols is not None:
        scale = 1.0 if mask_scale is None else float(mask_scale)
        mask_norms = patch_norms(masks, patch_size, stride).flatten()
        torch.mul(mask_cols.t(), (scale / mask_norms.clamp_min(EPS)).to(dtype)[:, None], out=out[:, ck2:-1])
        out[:, -1] = 1.0 if mask_scale is None else -scale
    return out, norms


@torch.no_grad()
def nearest_patches(target_rows: torch.Tensor, style_rows: torch.Tensor,
                    chunk_elements: int = CHUNK_ELEMENTS) -> tuple[torch.Tensor, torch.Tensor]:
    """For each synthesis patch, the style patch of highest score: ``(index (L,) int64, score (L,) float32)``.

    ``target_rows`` ``(L, D)`` and ``style_rows`` ``(N, D)`` come from :func:`ncc_patches`. The scores are the
    convolution of the synthesis features with the normalised style patches as filters, written as im2col + GEMM
    so the synthesis patch normalisation is folded in; it runs over chunks of ``chunk_elements // L`` style patches,
    keeping a running best, so memory stays at one ``(L, chunk)`` score block.
    """
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


def mrf_loss(features: torch.Tensor, matched: torch.Tensor, patch_size: int = 3, stride: int = 1) -> torch.Tensor:
    """Mean over patch elements of ``(Φ_i(x) − matched_i)²``, for ``features`` ``(1, C, h, w)`` and the style patch
    each synthesis patch was matched to, ``matched`` ``(L, C, k, k)`` or ``(L, C·k²)`` in row-major patch order.

    Computed without materialising the synthesis patches:  Σ_i‖x_i − s_i‖² = Σ_p cover(p)·x(p)² − 2⟨x, T⟩ + Σ_i‖s_i‖²,
    where ``cover`` counts the patches over each position and ``T = fold(matched)`` overlays the matched patches;
    its gradient 2(cover·x − T) is CNNMRF's "target minus source, summed over overlapping patches".
    """
    _, c, h, w = features.shape
    k = patch_size
    hp, wp = (h - k) // stride + 1, (w - k) // stride + 1
    if matched.numel() != hp * wp * c * k * k:
        raise ValueError(f"matched patches {tuple(matched.shape)} do not fit features {tuple(features.shape)}")
    with torch.no_grad():
        span = ((hp - 1) * stride + k, (wp - 1) * stride + k)
        pad = (0, w - span[1], 0, h - span[0])
        cols = matched.reshape(hp * wp, c * k * k).float().t()  # (C·k², L): free when matched is a transposed view
        overlay = F.pad(F.fold(cols[None], span, k, stride=stride), pad)
        cover = F.pad(F.fold(torch.ones(1, k * k, hp * wp, device=features.device), span, k, stride=stride), pad)
        constant = cols.pow(2).sum()
        x = features.detach()
        if x.is_contiguous(memory_format=torch.channels_last):  # keep elementwise ops in one memory layout
            overlay = overlay.contiguous(memory_format=torch.channels_last)
    x = features.float()
    total = ((cover * x - 2 * overlay) * x).sum() + constant
    return total.clamp_min(0) / matched.numel()


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

    Call :meth:`set_style` with the style features (one dict per style copy: CNNMRF adds rotated and scaled
    copies) and, for guidance, their masks; :meth:`set_target_masks` with the target's masks. ``forward(features)``
    matches every synthesis patch, then returns Σ_l w_l · mrf_loss.
    """

    def __init__(self, layers=("relu3_1", "relu4_1"), weights=None, patch_size: int = 3, style_stride: int = 1,
                 stride: int = 1, semantic_weight: float = 0.0, match_dtype: torch.dtype = torch.float32,
                 chunk_elements: int = CHUNK_ELEMENTS):
        super().__init__()
        layers = list(layers)
        self.weights = layer_weights(layers, [1.0] * len(layers) if weights is None else weights)
        self.layers = tuple(self.weights)
        self.patch_size, self.style_stride, self.stride = patch_size, style_stride, stride
        self.semantic_weight = float(semantic_weight)
        self.match_dtype = match_dtype
        self.chunk_elements = chunk_elements
        # (D, N) normalised style patches (+ mask part) as columns, match_dtype: the GEMM reads column chunks and the
        # loss gathers columns straight into fold's (C·k², L) layout, with no transposing copies
        self.style_cols: dict[str, torch.Tensor] = {}
        self.style_norms: dict[str, torch.Tensor] = {}  # (N,) feature norms: rows[:, :C·k²] · norms = the patches
        self.channels: dict[str, int] = {}
        self.target_masks: dict[str, torch.Tensor] = {}  # "image": (1, K, H, W), plus per-layer pooled copies
        self.last_index: dict[str, torch.Tensor] = {}  # matches of the last forward, for inspection and tests
        self._target_rows: dict[str, torch.Tensor] = {}  # per layer: (L, D) buffer whose mask part is fixed

    @property
    def style_rows(self) -> dict[str, torch.Tensor]:
        """``{layer: (N, D)}`` views of the cached style patches, one row per patch."""
        return {layer: cols.t() for layer, cols in self.style_cols.items()}

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
        from ..semantic import masks_at

        features = [features] if isinstance(features, dict) else list(features)
        masks = [None] * len(features) if masks is None else ([masks] if torch.is_tensor(masks) else list(masks))
        valid = [None] * len(features) if valid is None else ([valid] if torch.is_tensor(valid) else list(valid))
        guided = self.semantic_weight > 0 and all(m is not None for m in masks)
        k, s = self.patch_size, self.style_stride
        for layer in self.layers:
            rows, norms = [], []
            for feats, mask, ok in zip(features, masks, valid):
                f = feats[layer].detach().float()
                if min(f.shape[-2:]) < k:
                    raise ValueError(f"style features at {layer} are {tuple(f.shape[-2:])}, smaller than a {k}x{k} "
                                     "patch: use a larger style image or size")
                m = masks_at(mask.float().to(f.device), f.shape[-2:]) if guided else None
                r, n = ncc_patches(f, k, s, m, None, self.match_dtype)
                if ok is not None:  # keep patches lying wholly inside the valid area
                    inside = -F.max_pool2d(-masks_at(ok.float().to(f.device), f.shape[-2:]), k, stride=s)
                    keep = inside.flatten() > 0.99
                    r, n = r[keep], n[keep]
                rows.append(r)
                norms.append(n)
            self.style_cols[layer] = torch.cat(rows).t().contiguous()
            self.style_norms[layer] = torch.cat(norms)
            self.channels[layer] = features[0][layer].shape[1]

    def set_target_masks(self, masks: torch.Tensor | None) -> None:
        """Target masks ``(1, K, H, W)`` at image resolution (None clears them); pooled to each layer on use."""
        self.target_masks = {} if masks is None else {"image": masks.float()}
        self._target_rows = {}

    def _target_masks_at(self, layer: str, size) -> torch.Tensor:
        from ..semantic import masks_at

        cached = self.target_masks.get(layer)
        if cached is None or tuple(cached.shape[-2:]) != tuple(size):
            cached = self.target_masks[layer] = masks_at(self.target_masks["image"], tuple(size))
        return cached

    def match(self, layer: str, feature: torch.Tensor) -> torch.Tensor:
        """Nearest style patch index for each synthesis patch of ``feature`` at ``layer``: ``(h'·w',)``."""
        style = self.style_cols[layer].t()
        ck2 = self.channels[layer] * self.patch_size**2
        guided = self.guided and style.shape[1] > ck2
        if not guided:
            rows, _ = ncc_patches(feature.detach(), self.patch_size, self.stride, dtype=self.match_dtype)
            return nearest_patches(rows, style[:, :ck2], self.chunk_elements)[0]
        rows = self._target_rows.get(layer)
        positions = math.prod((n - self.patch_size) // self.stride + 1 for n in feature.shape[-2:])
        if rows is not None and len(rows) == positions:
            ncc_patches(feature.detach(), self.patch_size, self.stride, dtype=self.match_dtype, out=rows)
        else:  # first call at this size: build the map part too and keep it, the target map does not change
            masks = self._target_masks_at(layer, feature.shape[-2:]).to(feature.device)
            rows, _ = ncc_patches(feature.detach(), self.patch_size, self.stride, masks, self.semantic_weight,
                                  self.match_dtype)
            self._target_rows[layer] = rows
        return nearest_patches(rows, style, self.chunk_elements)[0]

    def matched_patches(self, layer: str, index: torch.Tensor) -> torch.Tensor:
        """The style feature patches at ``index``: ``(L, C·k²)`` float32, a transposed view of ``(C·k², L)``."""
        ck2 = self.channels[layer] * self.patch_size**2
        cols = self.style_cols[layer][:ck2].index_select(1, index).float() * self.style_norms[layer][index]
        return cols.t()

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        if not self.style_cols:
            raise RuntimeError("MRFLoss: set_style() was not called")
        total = 0.0
        for layer, weight in self.weights.items():
            feature = features[layer]
            index = self.last_index[layer] = self.match(layer, feature)
            total = total + weight * mrf_loss(feature, self.matched_patches(layer, index), self.patch_size, self.stride)
        return total
