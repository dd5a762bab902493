"""Semantic maps: colour-coded region maps -> palettes -> one-hot masks at any resolution.

A semantic map is an RGB image whose few flat colours name regions (Champandard 2016, "Semantic Style Transfer
and Turning Two-Bit Doodles into Fine Artworks"). Real maps carry anti-aliasing and JPEG noise, and a target map's
colours can be slightly shifted from the style map's, so colours are never matched exactly:

1. :func:`extract_palette` finds the few major colours (k-means on the map's colours, tiny clusters dropped);
2. :func:`match_palettes` pairs each target colour with the nearest style colour;
3. :func:`map_to_masks` assigns every pixel to its nearest palette colour, giving one-hot masks ``(1, K, H, W)``;
4. :func:`masks_at` area-pools the masks to a VGG layer's resolution (as neural-doodle pools its maps).

:func:`semantic_masks` does 1-3 for a style/target pair in one call. Users without hand-drawn maps get
:func:`auto_maps`: a joint k-means segmentation of several images (colour + position, or VGG features), so that
region ``k`` means the same kind of thing in each image.

Shapes: maps and images ``(1, 3, H, W)`` RGB in [0, 1]; palettes ``(K, 3)`` RGB in [0, 1]; masks ``(1, K, H, W)``.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from ..conf.sizes import check_sizes, map_has_image_size
from ..errors import ConfigError, ImageError, SemstyleError, check
from .encoder import vgg19_encoder
from .image import _open, pil_to_array, resize

# Distinct colours used to draw automatic maps (and any masks without a palette of their own).
AUTO_COLORS = (
    torch.tensor(
        [
            (230, 25, 75),
            (60, 180, 75),
            (0, 130, 200),
            (255, 225, 25),
            (145, 30, 180),
            (70, 240, 240),
            (245, 130, 48),
            (240, 50, 230),
            (210, 245, 60),
            (0, 0, 128),
            (170, 110, 40),
            (128, 128, 128),
        ],
        dtype=torch.float32,
    )
    / 255.0
)

# Two palette colours closer than this (Euclidean, RGB in [0, 1]) are one class split by k-means.
MERGE_DISTANCE = 0.12
# A target colour farther than this from every style colour has no counterpart (~0.25 = 64/255 on one channel).
MATCH_DISTANCE = 0.25


def load_map(path: str | os.PathLike, size=None, what: str = "style map") -> torch.Tensor:
    """Read a colour-coded semantic map as ``(1, 3, H, W)`` RGB in [0, 1].

    Args:
        size: ``None`` (keep), long side int, or ``(H, W)``; resized with nearest neighbour so no new
            in-between colours appear.
        what: how errors name the file.

    Greyscale maps and maps with transparent pixels are a :class:`ImageError` naming the file: a grey level or a
    transparent pixel names no region unambiguously. A fully opaque RGBA file is accepted.
    """
    img = _open(path, what)
    if img.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"):
        raise ImageError(
            f"{what} {path}: is a greyscale image; a semantic map must be an RGB image whose colours name regions"
        )
    if img.mode in ("RGBA", "PA", "LA") or (img.mode == "P" and "transparency" in img.info):
        alpha = np.asarray(img.convert("RGBA"))[..., 3]
        if alpha.min() < 255:
            raise ImageError(
                f"{what} {path}: has transparent pixels (RGBA); a semantic map must be an opaque RGB "
                "image (flatten it onto a colour first)"
            )
    arr = pil_to_array(img.convert("RGB"))
    semantic = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None]
    return resize(semantic, size, mode="nearest") if size is not None else semantic


def _pixels(semantic: torch.Tensor) -> torch.Tensor:
    """``(1, 3, H, W)`` -> ``(H·W, 3)`` float32."""
    check(
        semantic.ndim == 4 and semantic.shape[:2] == (1, 3),
        f"a semantic map must be a (1, 3, H, W) tensor, got shape {tuple(semantic.shape)}",
        SemstyleError,
    )
    return semantic[0].reshape(3, -1).t().float()


def extract_palette(semantic: torch.Tensor, max_colors: int = 8, min_fraction: float = 0.005) -> torch.Tensor:
    """The major colours of a map, ``(K, 3)`` float RGB in [0, 1], most frequent first.

    k-means (scikit-learn) with ``max_colors`` clusters over the map's distinct 8-bit colours, weighted by their
    pixel counts (fast: a map has a few hundred distinct colours, not H·W). Clusters covering less than
    ``min_fraction`` of the pixels are anti-aliasing or compression noise and are dropped (MANIFEST: the classes
    of the shared maps are the colours above 0.5 %); clusters closer than :data:`MERGE_DISTANCE` are merged. Each
    palette entry is the most frequent exact colour of its cluster, so a clean colour like ``(255, 51, 31)`` comes
    back exactly instead of a centroid pulled by its noisy edge pixels.
    """
    check(isinstance(max_colors, int) and max_colors >= 1, f"max_colors: must be an integer >= 1, got {max_colors!r}")
    check(0 <= min_fraction < 1, f"min_fraction: must be in [0, 1), got {min_fraction!r}")
    rgb8 = (_pixels(semantic) * 255).round().to(torch.int64).clamp(0, 255)
    codes, counts = torch.unique(rgb8[:, 0] << 16 | rgb8[:, 1] << 8 | rgb8[:, 2], return_counts=True)
    colors = torch.stack([codes >> 16, (codes >> 8) & 255, codes & 255], 1).float() / 255
    counts = counts.double()
    k = min(max_colors, len(codes))
    # imported here, not at the top: sklearn takes ~1.5 s to load, and only maps and keypoint selection
    # cluster; every other run (and each sweep worker, each CLI call) starts without it
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=4, random_state=0).fit(colors.numpy(), sample_weight=counts.numpy())
    labels = torch.from_numpy(km.labels_).long()
    mass = torch.zeros(k, dtype=torch.float64).index_add_(0, labels, counts)
    palette = []
    for c in mass.argsort(descending=True).tolist():  # at most max_colors iterations
        if mass[c] < min_fraction * counts.sum():
            break
        members = (labels == c).nonzero()[:, 0]
        mode = colors[members[counts[members].argmax()]]
        if all(torch.dist(mode, p) >= MERGE_DISTANCE for p in palette):
            palette.append(mode)
    return torch.stack(palette)


def describe_color(color: torch.Tensor) -> str:
    """``(3,)`` in [0, 1] -> ``"(255, 51, 31)"``."""
    return "(" + ", ".join(str(int(round(float(v) * 255))) for v in color) + ")"


def _where(semantic: torch.Tensor, palette: torch.Tensor, index: int) -> str:
    """Where pixels of palette entry ``index`` lie in ``semantic``: their share and bounding box. From a few hundred
    pixels on, the box leaves out the outermost 0.2 % on each side: a stray anti-aliased pixel elsewhere whose
    nearest colour is this one would otherwise stretch a painter's 200x150 patch to a box across the map."""
    masks = map_to_masks(semantic, palette)[0, index]
    ys, xs = masks.nonzero(as_tuple=True)
    if len(ys) == 0:
        return "nowhere"
    share = 100.0 * len(ys) / masks.numel()
    # the 0 and 1 quantiles are the minimum and maximum: the whole box
    q, within = ((0.0, 1.0), "within") if len(ys) < 400 else ((0.002, 0.998), "mostly within")
    (x0, x1), (y0, y1) = _nearest_rank(xs, q), _nearest_rank(ys, q)
    return f"{share:.1f}% of the pixels, {within} x={x0}..{x1}, y={y0}..{y1}"


def _nearest_rank(values: torch.Tensor, quantiles) -> list[int]:
    """The ``quantiles`` of pixel coordinates (a 1-D tensor of integers >= 0) by nearest rank, as
    ``torch.quantile(..., interpolation="nearest")``, which refuses more than 2^24 values (a colour over most of a
    6000x4000 map has more). Counted, not sorted: ``kthvalue`` takes minutes on coordinates already in order."""
    below_or_at = torch.bincount(values).cumsum(0)  # [i]: how many values are <= i
    ranks = torch.tensor([round(q * (len(values) - 1)) + 1 for q in quantiles])
    return torch.searchsorted(below_or_at, ranks).tolist()


def match_palettes(
    target_palette: torch.Tensor,
    style_palette: torch.Tensor,
    unmatched: str = "error",
    max_distance: float = MATCH_DISTANCE,
    target_map: torch.Tensor | None = None,
    what: str = "target map",
) -> torch.Tensor:
    """For each target colour, the index of the nearest style colour: ``(K_t,)`` int64.

    A target colour farther than ``max_distance`` (Euclidean, RGB in [0, 1]) from every style colour has no
    counterpart: ``unmatched="error"`` raises a :class:`ConfigError` naming the colour (and, given ``target_map``,
    where it is); ``"ignore"`` warns and gives it index ``-1`` (its pixels get no semantic channel).
    """
    check(unmatched in ("error", "ignore"), f"semantic.unmatched: {unmatched!r} is not one of error, ignore")
    dist = torch.cdist(target_palette.float(), style_palette.float())
    best, index = dist.min(dim=1)
    for t in (best > max_distance).nonzero()[:, 0].tolist():
        where = f" ({_where(target_map, target_palette, t)})" if target_map is not None else ""
        msg = (
            f"{what}: colour {describe_color(target_palette[t])}{where} has no counterpart in the style map "
            f"(nearest is {describe_color(style_palette[index[t]])}); fix the map or set semantic.unmatched=ignore"
        )
        if unmatched == "error":
            raise ConfigError(msg)
        warnings.warn(msg + " -> ignored", stacklevel=2)
        index[t] = -1
    return index


def map_to_masks(semantic: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """One-hot masks ``(1, K, H, W)`` float32: every pixel goes to its nearest palette colour."""
    h, w = semantic.shape[-2:]
    nearest = torch.cdist(_pixels(semantic), palette.float().to(semantic.device)).argmin(dim=1)
    masks = F.one_hot(nearest, len(palette)).t().reshape(1, len(palette), h, w)
    return masks.float()


def masks_at(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Masks ``(1, K, H, W)`` -> ``(1, K, h, w)`` by area (average) pooling: soft at region borders, as VGG's
    receptive fields are."""
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks
    return F.interpolate(masks, size=tuple(size), mode="area")


class RegionMasks:
    """The region masks ``(B, K, H, W)`` of one image, handed to every loss that works region by region.

    Each loss reads them at its layers' resolutions through :meth:`at`, which pools them once per size and device
    and keeps the result: the style term, the colour term and every layer of both share one pooled copy, and no
    loss resizes masks itself.

    >>> masks = RegionMasks(torch.ones(1, 2, 8, 8))
    >>> masks.at((4, 4)).shape, masks.count
    (torch.Size([1, 2, 4, 4]), 2)
    """

    def __init__(self, masks: torch.Tensor):
        check(masks.ndim == 4, f"region masks must be (B, K, H, W), got {tuple(masks.shape)}")
        self.masks = masks.float()
        self._pooled: dict[tuple, torch.Tensor] = {}

    @classmethod
    def of(cls, masks) -> "RegionMasks | None":
        """``masks`` as :class:`RegionMasks` (a tensor is wrapped; None and RegionMasks pass through)."""
        return masks if masks is None or isinstance(masks, RegionMasks) else cls(masks)

    @property
    def count(self) -> int:
        return self.masks.shape[1]

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.masks.shape[-2:])

    def at(self, size, device=None) -> torch.Tensor:
        """The masks area-pooled to ``size`` (:func:`masks_at`), on ``device`` (default: where they are)."""
        key = (tuple(size), None if device is None else torch.device(device))
        if key not in self._pooled:
            pooled = masks_at(self.masks, tuple(size))
            self._pooled[key] = pooled if device is None else pooled.to(device)
        return self._pooled[key]


def region_means(image: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean colour ``(K, 3)`` of ``image`` ``(1, 3, H, W)`` in each region of ``masks`` ``(1, K, h, w)`` (pooled to
    the image's size); an empty region gives 0."""
    masks = masks_at(masks.float(), image.shape[-2:])
    return torch.einsum("bkhw,bchw->kc", masks, image) / masks.sum((0, 2, 3)).clamp_min(1e-6)[:, None]


def masks_to_map(masks: torch.Tensor, palette: torch.Tensor | None = None) -> torch.Tensor:
    """Draw masks ``(1, K, H, W)`` as a colour map ``(1, 3, H, W)`` (``palette`` ``(K, 3)``, default distinct
    colours). Pixels with no region are black."""
    k = masks.shape[1]
    palette = AUTO_COLORS[torch.arange(k) % len(AUTO_COLORS)] if palette is None else palette.float()
    return torch.einsum("bkhw,kc->bchw", masks.float(), palette.to(masks.device)).clamp(0, 1)


def semantic_masks(
    style_map: torch.Tensor,
    target_map: torch.Tensor,
    max_colors: int = 8,
    min_fraction: float = 0.005,
    unmatched: str = "error",
    palette: torch.Tensor | None = None,
    what: str = "target map",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Masks of a style map and a target map in one shared channel order (``what`` names the target map in an
    unmatched colour's message).

    Returns ``(style_masks (1, K, Hs, Ws), target_masks (1, K, Ht, Wt), palette (K, 3))`` where ``palette`` is the
    style map's (or the given one) and channel ``k`` of both mask sets is the same region. Target pixels whose
    colour was ignored (``unmatched="ignore"``) are zero in every channel.
    """
    if palette is None:
        palette = extract_palette(style_map, max_colors, min_fraction)
    target_palette = extract_palette(target_map, max_colors, min_fraction)
    index = match_palettes(target_palette, palette, unmatched, target_map=target_map, what=what)
    target_own = map_to_masks(target_map, target_palette)
    target = torch.zeros(1, len(palette), *target_map.shape[-2:])
    keep = index >= 0
    target.index_add_(1, index[keep], target_own[:, keep])
    return map_to_masks(style_map, palette), target, palette


def check_map_size(
    semantic: torch.Tensor,
    image: torch.Tensor,
    map_name: str,
    image_name: str,
    resize_maps: bool = False,
    option: str = "--resize-maps",
) -> torch.Tensor:
    """The map at its image's size: an error naming both when they differ, unless ``resize_maps`` (nearest)."""
    if map_has_image_size(semantic.shape[-2:], image.shape[-2:], map_name, image_name, resize_maps, option):
        return semantic
    return resize(semantic, tuple(image.shape[-2:]), mode="nearest")


def _color_position_features(image: torch.Tensor, position_weight: float) -> torch.Tensor:
    """``(H·W, 5)``: CIE Lab colour scaled to ~[0, 1] plus the pixel's (y, x) in [0, 1] × ``position_weight``."""
    import kornia  # here, not at the top: importing kornia is 0.3 s of every process's start-up

    h, w = image.shape[-2:]
    lab = kornia.color.rgb_to_lab(image.float().clamp(0, 1))[0] / torch.tensor([100.0, 128.0, 128.0]).view(3, 1, 1)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    feats = torch.cat([lab, position_weight * torch.stack([ys, xs])], 0)
    return feats.reshape(5, -1).t()


def auto_maps(
    images: list[torch.Tensor],
    n_regions: int,
    features: str = "color",
    position_weight: float = 0.5,
    work_size: int = 128,
    encoder=None,
    layer: str = "relu3_1",
    seed: int = 0,
) -> list[torch.Tensor]:
    """Segment several images into the same ``n_regions`` classes by one joint k-means; one-hot masks per image.

    Args:
        images: ``(1, 3, H, W)`` RGB tensors in [0, 1] (e.g. the style painting and the content photo).
        features: ``"color"`` (CIE Lab + position × ``position_weight``, so regions are compact) or ``"vgg"``
            (L2-normalised VGG-19 ``layer`` features plus position: regions of similar texture/content).
        work_size: long side the clustering is fitted at (speed); every full-size pixel is then assigned.

    Returns masks ``(1, K, H, W)`` per image, same order. Clustering all images together makes region ``k``
    the same kind of area (sky, foliage...) in each, which is what a doodle pairing needs.
    """
    check(features in ("color", "vgg"), f"semantic.auto_features: {features!r} is not one of color, vgg")
    check(
        isinstance(n_regions, int) and n_regions >= 2,
        f"auto maps: need an integer number of regions >= 2, got {n_regions!r}",
    )

    def feats_of(image: torch.Tensor, size) -> tuple[torch.Tensor, tuple[int, int]]:
        small = resize(image.float(), size, mode="area") if size is not None else image.float()
        if features == "color":
            return _color_position_features(small, position_weight), tuple(small.shape[-2:])
        enc = encoder
        if enc is None:
            enc = vgg19_encoder("max", "fp32", "cpu")
        with torch.no_grad():
            f = enc(small.to(enc.device), [layer])[layer].float().cpu()[0]
        f = F.normalize(f, dim=0)
        hf, wf = f.shape[-2:]
        ys, xs = torch.meshgrid(torch.linspace(0, 1, hf), torch.linspace(0, 1, wf), indexing="ij")
        f = torch.cat([f, position_weight * torch.stack([ys, xs])], 0)
        return f.reshape(f.shape[0], -1).t(), (hf, wf)

    if features == "vgg":
        check_sizes(
            {f"auto-map image {i + 1}": img for i, img in enumerate(images)},
            [work_size],
            [layer],
            key="semantic.auto_features=color, or a less elongated image",
        )
    fit = [feats_of(img, work_size)[0] for img in images]
    # imported here, not at the top: sklearn takes ~1.5 s to load, and only maps and keypoint selection
    # cluster; every other run (and each sweep worker, each CLI call) starts without it
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=n_regions, n_init=4, random_state=seed).fit(torch.cat(fit).numpy())
    centers = torch.from_numpy(km.cluster_centers_).float()
    out = []
    for img in images:
        # colour features are cheap: assign every full-resolution pixel; VGG ones at the work size, then upsample
        f, (h, w) = feats_of(img, None if features == "color" else work_size)
        label = torch.cdist(f, centers).argmin(1)
        masks = F.one_hot(label, n_regions).t().reshape(1, n_regions, h, w).float()
        if (h, w) != tuple(img.shape[-2:]):
            soft = F.interpolate(masks, size=tuple(img.shape[-2:]), mode="bilinear", align_corners=False)
            masks = F.one_hot(soft.argmax(1)[0], n_regions).permute(2, 0, 1)[None].float()
        out.append(masks)
    return out


def auto_map(image: torch.Tensor, n_regions: int, features: str = "color", **options) -> torch.Tensor:
    """Masks ``(1, K, H, W)`` of one image segmented into ``n_regions`` by k-means (see :func:`auto_maps`)."""
    return auto_maps([image], n_regions, features, **options)[0]


def palette_strip(palette: torch.Tensor, height: int = 32, width: int = 48) -> torch.Tensor:
    """The palette as an image strip ``(1, 3, height, K·width)``: one swatch per region, in channel order."""
    k = len(palette)
    strip = palette.float().t().reshape(3, 1, k, 1).expand(3, height, k, width)
    return strip.reshape(1, 3, height, k * width).clone()
