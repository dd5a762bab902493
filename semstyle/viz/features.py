"""Pictures of what the encoder sees: image grids with captions and a feature-map view (the first N channels of
chosen VGG-19 layers, as in the figures of Gatys et al. that show conv1_1 ... conv4_1 responses).

``semstyle features IMAGE --layers conv1_1 conv2_1 conv3_1 conv4_1 --channels 16 --out features.png``
"""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image

from ..conf.sizes import check_sizes
from ..core.encoder import check_layers, layer_channels, vgg19_encoder
from ..core.image import resize
from ..errors import check
from .layout import captioned_row, grid


def colorize(maps: torch.Tensor, cmap: str = "viridis") -> torch.Tensor:
    """``(N, h, w)`` maps in [0, 1] -> ``(N, 3, h, w)`` RGB through a matplotlib colour map (``gray`` for grey)."""
    check(cmap in colormaps, f"cmap: {cmap!r} is not a matplotlib colour map (e.g. viridis, gray, magma)")
    rgba = colormaps[cmap](maps.clamp(0, 1).numpy())  # vectorised lookup, (N, h, w, 4) float64
    return torch.from_numpy(np.ascontiguousarray(rgba[..., :3], dtype=np.float32)).permute(0, 3, 1, 2)


def feature_maps(
    image: torch.Tensor,
    layer: str,
    channels: int = 16,
    pooling: str = "avg",
    precision: str = "auto",
    device: str = "auto",
) -> torch.Tensor:
    """The first ``channels`` maps of ``layer`` for ``image`` ``(1, 3, H, W)``, each min-max scaled to [0, 1]:
    ``(channels, h, w)`` (a flat map becomes 0)."""
    check_layers([layer])
    check(isinstance(channels, int) and 1 <= channels, f"channels: must be an integer >= 1, got {channels!r}")
    channels = min(channels, layer_channels(layer))
    encoder = vgg19_encoder(pooling, precision, device)
    with torch.no_grad():
        maps = encoder(image, [layer])[layer][0, :channels].float().cpu()
    lo = maps.amin(dim=(1, 2), keepdim=True)
    span = maps.amax(dim=(1, 2), keepdim=True) - lo
    return (maps - lo) / span.clamp_min(1e-12)


def feature_view(
    image: torch.Tensor,
    layers,
    channels: int = 16,
    tile: int = 64,
    cmap: str = "viridis",
    pooling: str = "avg",
    precision: str = "auto",
    device: str = "auto",
) -> Image.Image:
    """A figure: the image, then per layer a square-ish grid of its first ``channels`` feature maps.

    Every map is scaled to a ``tile``-px long side (nearest neighbour when enlarging, so deep layers show their
    real, coarse resolution).
    """
    layers = [layers] if isinstance(layers, str) else list(layers)
    check(len(layers) > 0, "layers: name at least one layer")
    check_layers(layers)
    check_sizes({"image": image}, [max(image.shape[-2:])], layers, key="--size")
    check(isinstance(tile, int) and 8 <= tile <= 1024, f"tile: must be an integer in [8, 1024], got {tile!r}")
    panels, captions = [], []
    for layer in layers:
        tiles = colorize(feature_maps(image, layer, channels, pooling, precision, device), cmap)
        mode = "nearest" if max(tiles.shape[-2:]) < tile else "area"
        tiles = resize(tiles, tile, mode=mode)
        panel = grid(tiles, ncols=math.ceil(math.sqrt(tiles.shape[0])))
        panels.append(panel)
        captions.append(f"{layer} ({tiles.shape[0]} of {layer_channels(layer)})")
    tallest = max(p.shape[-2] for p in panels)
    return captioned_row(
        [resize(image, (tallest, round(image.shape[-1] * tallest / image.shape[-2])))] + panels, ["input"] + captions
    )
