"""Laplacian-pyramid parameterisation of an image (STROTSS, Kolkin et al. 2019, Sec. 2.4; reused by DST).

Optimising the pyramid's levels instead of the pixels lets an adaptive optimiser (RMSprop, Adam) move every
frequency band at the same rate: one coarse coefficient covers many pixels, so low frequencies (colour, large
shapes) change quickly instead of being rebuilt pixel by pixel.

A pyramid of ``levels`` bands of ``(B, C, H, W)`` is a list of ``levels + 1`` tensors, finest first::

    [band_0 (H, W), band_1 (⌊H/2⌋, ⌊W/2⌋), ..., band_{levels-1}, residual (low-pass)]

with ``band_i = x_i − up(x_{i+1})`` and ``x_{i+1} = down(x_i)``. :func:`reconstruct` inverts it exactly (up to
float rounding) for any size, odd ones included, because it upsamples with the same operator to the stored size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import check


def _down(x: torch.Tensor) -> torch.Tensor:
    """Half size (floor, at least 1 px), antialiased bilinear: a cheap low-pass + decimation."""
    h, w = max(x.shape[-2] // 2, 1), max(x.shape[-1] // 2, 1)
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)


def _up(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def laplacian_pyramid(image: torch.Tensor, levels: int = 5) -> list[torch.Tensor]:
    """Decompose ``image`` ``(B, C, H, W)`` into ``levels`` band-pass tensors plus the low-pass residual.

    Differentiable. ``levels=0`` returns ``[image]``. STROTSS uses 5 levels.
    """
    check(isinstance(levels, int) and levels >= 0, f"pyramid levels must be an integer >= 0, got {levels!r}")
    bands, current = [], image
    for _ in range(levels):
        low = _down(current)
        bands.append(current - _up(low, current.shape[-2:]))
        current = low
    return bands + [current]


def reconstruct(pyramid: list[torch.Tensor]) -> torch.Tensor:
    """The image ``(B, C, H, W)`` a pyramid from :func:`laplacian_pyramid` encodes (differentiable)."""
    image = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        image = band + _up(image, band.shape[-2:])
    return image


def high_pass(image: torch.Tensor) -> torch.Tensor:
    """The finest band ``image − up(down(image))`` of ``(B, C, H, W)``: the detail one pyramid level holds."""
    return laplacian_pyramid(image, 1)[0]


class LaplacianPyramid(nn.Module):
    """An image held as trainable pyramid levels; ``forward()`` returns the reconstructed ``(B, C, H, W)`` image.

    Pass ``pyramid.parameters()`` to the optimiser. ``levels=0`` degenerates to optimising the pixels.
    """

    def __init__(self, image: torch.Tensor, levels: int = 5):
        super().__init__()
        self.levels = nn.ParameterList(nn.Parameter(t.detach().clone()) for t in laplacian_pyramid(image, levels))

    def forward(self) -> torch.Tensor:
        return reconstruct(list(self.levels))
