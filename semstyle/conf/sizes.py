"""Checks run before any heavy work: is every image big enough for the encoder layers it goes through at its
working size? (Whether an output location can be written is :func:`semstyle.conf.checks.check_output_path`.)

Every 2x2 pooling of VGG-19 halves a side, rounding down, so a side of fewer than ``2^k`` px reaches a layer after
``k`` poolings as 0 px, and torch stops deep inside pooling ("Output size is too small"). These functions say, in
one line, which image, at which working size, and the smallest size that works. They need no torch: the methods
call them on their decoded images, and the command line (:func:`check_config_sizes`) on the files' headers before
torch loads.
"""

from __future__ import annotations

from ..errors import ConfigError, ImageError
from .checks import header_size
from .vocab import LAYER_NAMES, STROTSS_LAYERS, check_layers

MAX_SIZE = 8192  # the largest `size` the configs accept (semstyle.config.check_common)

Size = int | tuple[int, int] | None


def target_size(height: int, width: int, size: Size) -> tuple[int, int]:
    """``(H, W)`` after resizing an ``height x width`` image to ``size`` (long side int, or ``(H, W)``)."""
    if size is None:
        return height, width
    if isinstance(size, int):
        scale = size / max(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))
    return int(size[0]), int(size[1])


def deepest_layer(layers) -> str:
    """The layer of ``layers`` furthest down VGG-19."""
    layers = list(layers)
    check_layers(layers)
    return max(layers, key=LAYER_NAMES.index)


def min_side_for(layers, patch: int = 1) -> int:
    """Smallest image side (px) for which every layer of ``layers`` is at least ``patch`` cells wide and high.

    A layer after ``k`` poolings has ``⌊s / 2^k⌋`` cells along a side of ``s`` px, hence ``patch · 2^k``: 16 px for
    ``conv5_1``, 32 for ``pool5``, 24 for 3x3 patches on ``relu4_1`` (CNNMRF, neural doodle).
    """
    deepest = LAYER_NAMES.index(deepest_layer(layers))
    pools = sum(name.startswith("pool") for name in LAYER_NAMES[: deepest + 1])
    return int(patch) * 2**pools


def min_long_side(height: int, width: int, min_side: int, max_size: int = MAX_SIZE) -> int | None:
    """Smallest working long side at which an ``height x width`` image, resized as :func:`semstyle.image.resize`
    does (aspect kept, rounded), is at least ``min_side`` px on both sides; None when no long side up to
    ``max_size`` is."""
    if min_side <= 1:  # resize keeps every side at least 1 px
        return 1
    short, long = sorted((int(height), int(width)))
    # round(short · L / long) >= min_side needs L >= (min_side - 0.5) · long / short; try the few long sides around
    # that bound (rounding to even at .5) rather than trust float division
    start = max(int(min_side), int((min_side - 0.5) * long / max(short, 1)) - 1)
    for side in range(start, min(start + 4, max_size) + 1):
        if min(target_size(height, width, side)) >= min_side:
            return side
    return None


def check_image_size(hw, long_side: int, min_side: int, what: str, layer: str, key: str = "size") -> None:
    """An :class:`ImageError` unless an image of original size ``hw = (H, W)``, resized to ``long_side``, is at
    least ``min_side`` px on both sides. The message names ``what``, ``layer`` and the smallest ``key`` that works."""
    h, w = (int(v) for v in hw)
    hh, ww = target_size(h, w, int(long_side))
    if min(hh, ww) >= min_side:
        return
    need = min_long_side(h, w, min_side)
    if need is None:
        raise ImageError(
            f"{what}: {w}x{h} px is too elongated for the network: at any size up to {MAX_SIZE} px its "
            f"short side stays under the {min_side} px that {layer} needs; crop it to an aspect ratio "
            f"of at most {MAX_SIZE // min_side}:1"
        )
    now = f"is {w}x{h} px" if (hh, ww) == (h, w) else f"{w}x{h} px becomes {ww}x{hh} px"
    raise ImageError(
        f"{what}: {now} at a working long side of {long_side} px, but {layer} "
        f"needs at least {min_side} px per side; the smallest working long side that works is {need} px "
        f"(raise {key})"
    )


def check_working_size(image, long_side: int, layers, what: str, key: str = "size", patch: int = 1) -> None:
    """:func:`check_image_size` for an image ``(1, C, H, W)`` (or its ``(H, W)``) that goes through ``layers``
    (with ``patch`` x ``patch`` patches on them) at a working long side of ``long_side`` px."""
    check_image_size(image_hw(image), long_side, min_side_for(layers, patch), what, deepest_layer(layers), key)


def image_hw(image) -> tuple[int, int]:
    """``(H, W)`` of an image ``(..., H, W)`` tensor, or ``image`` itself when it is already a size."""
    return tuple(image.shape[-2:]) if hasattr(image, "shape") else tuple(image)


def check_sizes(
    images: dict, sizes, layers, patch: int = 1, scale: float = 1.0, floor: int = 1, key: str | None = None
) -> None:
    """Before any work: every image of ``images`` (``{name: (1, C, H, W) tensor or (H, W)}``), resized to the
    smallest long side of the schedule ``sizes`` times ``scale`` (at least ``floor`` px, as the methods size their
    style images), can go through ``layers`` with ``patch`` x ``patch`` patches. ``key`` names the setting to
    raise (default: ``size`` for one scale, else ``scales``)."""
    sizes = [int(s) for s in sizes]
    long_side = max(int(floor), round(min(sizes) * float(scale)))
    key = key or ("size" if len(sizes) == 1 else "scales")
    if scale != 1.0:
        key = f"{key}, or the style scale"
    for name, image in images.items():
        check_working_size(image, long_side, layers, name, key, patch)


def map_has_image_size(map_hw, image_hw, map_name: str, image_name: str, resize_maps=False, option="--resize-maps"):
    """Whether a region map of ``(H, W)`` ``map_hw`` has its image's ``image_hw``. When it has not, a one-line
    :class:`ImageError` naming both, unless ``resize_maps`` (then False: the caller resizes the map)."""
    if tuple(map_hw) == tuple(image_hw):
        return True
    (mh, mw), (ih, iw) = map_hw, image_hw
    if not resize_maps:
        raise ImageError(
            f"{map_name} is {mw}x{mh} but {image_name} is {iw}x{ih}; a map must have its image's size "
            f"(pass {option} to resize it)"
        )
    return False


def check_laplacian_pool(hw, pool: int) -> None:
    """The Laplacian term's ``pool x pool`` average pooling of an ``(H, W)`` image leaves at least 3 px per side,
    which its unpadded 3x3 filter needs; a one-line :class:`ConfigError` otherwise."""
    h, w = (int(n) // int(pool) for n in hw)
    if h < 3 or w < 3:
        raise ConfigError(
            f"laplacian.pool_sizes: pool size {pool} leaves a {h}x{w} image, too small for the 3x3 "
            f"Laplacian; use images of at least {3 * pool} px per side or smaller pool sizes"
        )


def check_method_sizes(cfg, content, styles=(), names=None) -> None:
    """Every image of a run of ``cfg`` is big enough, at the smallest scale of its schedule, for what its method
    reads: ``content`` and each of ``styles`` are ``(1, C, H, W)`` tensors or ``(H, W)`` sizes. ``names`` (one for
    the content, then one per style) say which image a message is about; by default "content image" and "style
    image" (numbered for Gatys's styles).

    Gatys (its content and style layers, the styles at ``style_scale``; the Laplacian term's pooled content),
    STROTSS and DST (their layers), reconstruct (its layers, on ``content``), the doodle and CNNMRF (their style
    layers with their patches, on the target map's or the content's size as ``content``, and on the style's
    smallest copy). The methods call this on their decoded images; :func:`check_config_sizes` calls it on the
    files' headers before torch loads.
    """
    from .common import scale_schedule

    sizes = scale_schedule(cfg)
    if names is None:
        numbered = cfg.method == "gatys"
        styles_names = [f"style image {i + 1}" if numbered else "style image" for i in range(len(styles))]
        names = ["image" if cfg.method == "reconstruct" else "content image", *styles_names]
    content_named, styles_named = {names[0]: content}, dict(zip(names[1:], styles))
    if cfg.method == "gatys":
        from .gatys import style_plan

        style_layers = [layer for _, layers, _ in style_plan(cfg, len(styles)) for layer in layers]
        check_sizes(content_named, sizes, list(cfg.content_layers) + style_layers)
        check_sizes(styles_named, sizes, style_layers, scale=cfg.style_scale, floor=16)
        if cfg.laplacian.weight > 0:
            for pool in cfg.laplacian.pool_sizes:
                check_laplacian_pool(target_size(*image_hw(content), min(sizes)), pool)
    elif cfg.method == "strotss":
        check_sizes(content_named, sizes, STROTSS_LAYERS)
        check_sizes(styles_named, sizes, STROTSS_LAYERS, scale=cfg.style_scale, floor=16)
    elif cfg.method == "dst":
        from .gatys import GATYS_CONTENT_LAYERS, GATYS_STYLE_LAYERS

        layers = GATYS_CONTENT_LAYERS + GATYS_STYLE_LAYERS if cfg.base == "gram" else STROTSS_LAYERS
        check_sizes({**content_named, **styles_named}, sizes, layers)
    elif cfg.method == "reconstruct":
        check_sizes(content_named, sizes, cfg.layers)
    elif cfg.method in ("doodle", "cnnmrf"):
        mrf = cfg.style_loss == "mrf"
        patch, key = (cfg.mrf.patch_size if mrf else 1), "size, phases or scales"
        zoom = cfg.mrf.scaling_step**-cfg.mrf.scalings if mrf else 1.0  # the smallest of the style's copies
        check_sizes(content_named, sizes, cfg.style_layers, patch, key=key)
        check_sizes(styles_named, sizes, cfg.style_layers, patch, cfg.style_scale * zoom, 16, key)


def check_config_sizes(cfg) -> None:
    """:func:`check_method_sizes` on the sizes the image files' headers give (EXIF rotation applied), before
    torch loads: a ``size`` or ``scales`` too small for the network answers in a fraction of a second. Runs after
    :func:`semstyle.conf.inputs.check_input_files`, which has checked that the files are readable images."""
    if cfg.method == "reconstruct":
        check_method_sizes(cfg, header_size(cfg.image, "image"), names=[f"image {cfg.image}"])
        return
    if cfg.method in ("doodle", "cnnmrf"):
        # the picture is painted at the content's size, or at the target map's without a content photo; a missing
        # image is the method's own one-line error
        target, what = (cfg.content, "content image") if cfg.content else (cfg.content_map, "target map")
        if not target or not cfg.style:
            return
        target_hw, style_hw = header_size(target, what), header_size(cfg.style, "style image")
        if cfg.style_map and not cfg.semantic.auto_maps:  # the maps first, as the method reads them
            option = "resize_maps=true (--resize-maps)"
            map_has_image_size(
                header_size(cfg.style_map, "style map"), style_hw, f"style map {cfg.style_map}", "the style image",
                cfg.resize_maps, option,
            )  # fmt: skip
            if cfg.content and cfg.content_map:  # the target is the content photo here
                map_has_image_size(
                    header_size(cfg.content_map, "target map"), target_hw, f"target map {cfg.content_map}",
                    "the content image", cfg.resize_maps, option,
                )  # fmt: skip
        names = [f"{what} {target}", f"style image {cfg.style}"]
        check_method_sizes(cfg, target_hw, [style_hw], names)
        return
    from .gatys import style_paths

    paths = style_paths(cfg.style)
    content_hw, styles = header_size(cfg.content, "content image"), [header_size(p, "style image") for p in paths]
    if cfg.method == "strotss" and cfg.content_map and cfg.style_map:  # the maps first, as the method reads them
        pairs = (("content_map", content_hw, "content image"), ("style_map", styles[0], "style image"))
        for key, image_hw, what in pairs:
            map_hw = header_size(cfg[key], key.replace("_", " "))
            map_has_image_size(
                map_hw, image_hw, f"{key} {cfg[key]}", f"the {what}", cfg.resize_maps, "resize_maps=true"
            )
    names = [f"content image {cfg.content}"] + [f"style image {path}" for path in paths]
    check_method_sizes(cfg, content_hw, styles, names)
