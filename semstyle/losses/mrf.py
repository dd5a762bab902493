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

import torch
import torch.nn.functional as F

from ..core.semantic import RegionMasks
from ..patches.geometry import (
    PatchIndex,
    extract_patches,
    mask_rows,
    ncc_patches,
    overlay_patches,
    overlay_style_patches,
    patch_grid,
    patch_index,
    patch_norms,
)
from ..patches.patchmatch import PATCHMATCH_MIN_SCORES, patchmatch_step, sampling_pools
from ..patches.search import (
    CHUNK_ELEMENTS,
    PatchGroup,
    candidate_groups,
    nearest_patches,
    principal_channels,
    project_channels,
)
from .base import Loss, layer_weights


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


def patch_distance(
    features: torch.Tensor, overlay: torch.Tensor, squares: torch.Tensor, patch_size: int = 3, stride: int = 1
) -> torch.Tensor:
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


class MRFLoss(Loss):
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

    :meth:`set_target` takes the style features (one dict per style copy: CNNMRF adds rotated and scaled copies)
    and, for guidance, their :class:`~semstyle.core.semantic.RegionMasks`; :meth:`set_input_masks` those of the
    image being optimised. ``forward(features)`` matches every synthesis patch of each image of the batch, then
    returns Σ_l w_l · mrf_loss (the mean over the batch).
    """

    region_wise = True

    def __init__(
        self,
        layers=("relu3_1", "relu4_1"),
        weights=None,
        patch_size: int = 3,
        style_stride: int = 1,
        stride: int = 1,
        semantic_weight: float = 0.0,
        match_dtype: torch.dtype = torch.float32,
        chunk_elements: int = CHUNK_ELEMENTS,
        match_channels: int = 0,
        search: str = "exact",
        search_every: int = 1,
        seed: int = 0,
    ):
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
        self.input_masks: RegionMasks | None = None  # (1 or B, K, H, W)
        self.last_index: dict[str, torch.Tensor] = {}  # matches of the last forward (first image), for inspection
        # per (layer, image): (size, target mask rows, {dtype: (L, D) row buffer}, [PatchGroup] or None)
        self._target: dict[tuple, tuple] = {}
        self.search = search
        self.search_every = int(search_every)
        # per (layer, image): (size, calls since the last search, the matches' overlay, Σ of their squared norms)
        self._matched: dict[tuple, tuple] = {}
        # per (layer, image), patchmatch: (size, (h', w') matches, PatchMatch steps done, sampling_pools, float32
        # style rows)
        self._field: dict[tuple, tuple] = {}
        self._generator = torch.Generator().manual_seed(seed)
        self._shifts: dict[str, dict] = {}  # per layer: {(dy, dx): (N,) shift_patches table}, patchmatch

    @property
    def guided(self) -> bool:
        return self.semantic_weight > 0 and self.input_masks is not None

    @torch.no_grad()
    def set_target(self, features, masks=None, valid=None) -> None:
        """Cache the style patches.

        Args:
            features: ``{layer: (1, C, h, w)}`` or a list of them (style copies).
            masks: the style's :class:`~semstyle.core.semantic.RegionMasks` (or ``(1, K, H, W)`` tensors; a list:
                one per copy), or None (unguided).
            valid: ``(1, 1, H, W)`` per copy, as masks or tensors: 1 where the copy has image content (rotated
                copies have empty corners); patches touching invalid pixels are dropped.
        """
        features = [features] if isinstance(features, dict) else list(features)
        masks = _per_copy(masks, len(features))
        valid = _per_copy(valid, len(features))
        guided = self.semantic_weight > 0 and all(m is not None for m in masks)
        k, s = self.patch_size, self.style_stride
        for layer in self.layers:
            feats = [f[layer].detach().float().contiguous(memory_format=torch.channels_last) for f in features]
            if min(feats[0].shape[-2:]) < k:
                raise ValueError(
                    f"style features at {layer} are {tuple(feats[0].shape[-2:])}, smaller than a "
                    f"{k}x{k} patch: use a larger style image or size"
                )
            channels = feats[0].shape[1]
            basis = principal_channels(feats, self.match_channels) if 0 < self.match_channels < channels else None
            rows, norms, units, keeps = [], [], [], []
            for f, mask, ok in zip(feats, masks, valid):
                u = mask_rows(mask.at(f.shape[-2:], f.device), k, s) if guided else None
                # search rows: the normalised patches, or those of the features projected on the basis
                r, n = ncc_patches(f if basis is None else project_channels(f, basis), k, s, u, None, self.match_dtype)
                if basis is not None:
                    n = patch_norms(f, k, s)
                keep = None
                if ok is not None:  # keep patches lying wholly inside the valid area
                    inside = -F.max_pool2d(-ok.at(f.shape[-2:], f.device), k, stride=s)
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

    def set_input_masks(self, masks: RegionMasks | None) -> None:
        """The region masks of the image being optimised (None clears them)."""
        self.input_masks = RegionMasks.of(masks)
        self._target, self._field, self._matched = {}, {}, {}

    def match(self, layer: str, feature: torch.Tensor, item: int = 0) -> torch.Tensor:
        """Nearest style patch index for each synthesis patch of ``feature`` ``(1, C, h, w)``, image ``item`` of
        the batch, at ``layer``: ``(h'·w',)``.

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
        previous = self._field.get((layer, item)) if patchmatch else None
        exact = previous is None or previous[0] != size
        # PatchMatch scores its candidates in float32 (best_candidates), the exact search in match_dtype
        dtype = self.match_dtype if exact else torch.float32
        if guided:
            unit, buffers, groups = self._target_rows(layer, size, feature.device, item)
            rows, _ = ncc_patches(
                search, self.patch_size, self.stride, unit, self.semantic_weight, dtype, out=buffers.get(dtype)
            )
            buffers[dtype] = rows
        else:
            rows, groups = extract_patches(search, self.patch_size, self.stride, dtype), None
        if exact:
            index = nearest_patches(rows, style, self.chunk_elements, groups)[0]
            if patchmatch:
                pools = sampling_pools(groups, len(rows), len(style), rows.device)
                self._field[layer, item] = size, index.view(grid), 0, pools, style.float()
            return index
        _, field, steps, pools, style32 = previous
        field = patchmatch_step(
            rows,
            style32,
            field,
            self.patch_index[layer],
            pools,
            steps,
            self._generator,
            self._shifts.setdefault(layer, {}),
        )
        self._field[layer, item] = size, field, steps + 1, pools, style32
        return field.flatten()

    def _target_rows(self, layer: str, size: tuple, device, item: int = 0) -> tuple:
        """``(mask rows, {dtype: (L, D) row buffer}, [PatchGroup] or None)`` of image ``item``'s map at ``layer``
        and ``size``: the map does not change, so they are kept per layer, image and size."""
        key = (layer, item if self.input_masks.masks.shape[0] > 1 else 0)
        if self._target.get(key, (None,))[0] != size:
            style = self.style_rows[layer]
            masks = self.input_masks.at(size, device)
            masks = masks[item : item + 1] if masks.shape[0] > 1 else masks
            unit = mask_rows(masks, self.patch_size, self.stride)
            groups = candidate_groups(
                unit, self.style_units[layer], self.patch_size, self.semantic_weight, self.chunk_elements
            )
            if groups is not None:
                groups = [PatchGroup(m, c, None if c is None else style.index_select(0, c)) for m, c in groups]
            self._target[key] = size, unit, {}, groups
        return self._target[key][1:]

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        if not self.style_rows:
            raise RuntimeError("MRFLoss: set_target() was not called")
        total = 0.0
        for layer, weight in self.weights.items():
            # one float32 channels-last copy (none from a bf16 encoder), read by both the search and the loss
            batch = features[layer].float().contiguous(memory_format=torch.channels_last)
            losses = [self._image_loss(layer, batch[b : b + 1], b) for b in range(len(batch))]
            loss = losses[0] if len(losses) == 1 else torch.stack(losses).mean()
            total = total + weight * loss
        return total

    def _image_loss(self, layer: str, feature: torch.Tensor, item: int) -> torch.Tensor:
        """:func:`patch_distance` of one image ``(1, C, h, w)`` to its matched style patches at ``layer``."""
        size = tuple(feature.shape[-2:])
        size_, calls, overlay, squares = self._matched.get((layer, item), (None, 0, None, None))
        if size_ == size and calls + 1 < self.search_every:  # keep the last matches and their overlay
            self._matched[layer, item] = size, calls + 1, overlay, squares
        else:
            index = self.match(layer, feature, item)
            if item == 0:
                self.last_index[layer] = index
            overlay = overlay_style_patches(
                self.style_pixels[layer], self.patch_index[layer], index, size, self.patch_size, self.stride
            )
            squares = self.style_norms[layer][index].square().sum()
            self._matched[layer, item] = size, 0, overlay, squares
        return patch_distance(feature, overlay, squares, self.patch_size, self.stride)


def _per_copy(masks, copies: int) -> list:
    """Masks for each style copy, as :class:`RegionMasks`: None, one set, or a list of one per copy."""
    if masks is None:
        return [None] * copies
    masks = [masks] if torch.is_tensor(masks) or isinstance(masks, RegionMasks) else list(masks)
    return [RegionMasks.of(m) for m in masks]
