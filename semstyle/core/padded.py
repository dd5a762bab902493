"""VGG features without the border artefact of zero padding, for losses that compare feature patches by position.

VGG-19 pads every 3x3 convolution with zeros, i.e. with the Caffe mean colour at the image's edge and with zero
activations deeper in. A feature cell at the edge of a map therefore describes "the image next to a grey frame",
which a style patch from the interior of a painting never contains. The patch MRF loss pulls every synthesis patch,
the edge ones included, towards interior style patches, and the only way the optimiser can make an edge cell look
like one is to tint the outer pixels against the frame: the 1-2 px border of a different colour that every doodle
result had (Monet at 128 px: the outer line's mean colour 30 RGB levels from the next lines', against 11 between
neighbouring lines inside). Mirror-padding the image by one cell of the deepest layer before the network and
cropping each feature map back to the unpadded size gives edge cells with plausible neighbours (the image itself),
for the synthesis, the style and the content alike (outer line 10 levels off on Monet; docs/doodle.md).

Shapes: images ``(B, 3, H, W)``; features ``(B, C, h, w)`` with the sizes the unpadded encoder gives.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .encoder import layer_stride

BORDER_PAD = 8  # px: one relu4_x cell (stride 8); rounded up to a multiple of the deepest requested layer's stride


def mirror_indices(size: int, pad: int, device=None) -> torch.Tensor:
    """Indices ``(size + 2·pad,)`` into ``range(size)`` that pad it symmetrically (edge sample repeated:
    ``… 1 0 | 0 1 … size-1 | size-1 size-2 …``), folding again for pads larger than ``size``."""
    i = torch.arange(-pad, size + pad, device=device) % (2 * size)
    return torch.where(i < size, i, 2 * size - 1 - i)


def _mirror_dim(x: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    """Symmetric padding of one dimension: the slice ``[-pad, n + pad)`` of the period ``x, flip(x)`` repeated."""
    n = x.shape[dim]
    start = (-pad) % (2 * n)
    period = torch.cat([x, x.flip(dim)], dim)
    tiled = torch.cat([period] * math.ceil((start + n + 2 * pad) / (2 * n)), dim)
    return tiled.narrow(dim, start, n + 2 * pad)


def mirror_pad(image: torch.Tensor, pad: int) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, C, H + 2·pad, W + 2·pad)``, mirrored about each edge as :func:`mirror_indices`
    (symmetric padding: every pixel within ``pad`` of an edge appears twice, so the gradient through the copies has
    no special outer line, as ``F.pad(mode="reflect")``'s unrepeated edge pixel has). Built from flips and
    concatenations: an ``index_select`` by :func:`mirror_indices` gives the same values, but with a bf16 encoder its
    runs left a colour speckle over content-mode results (Kodak portrait at content weight 100, 128 px: correlation
    with the photo 0.75 against 0.94; the cause was not pinned down)."""
    if pad <= 0:
        return image
    return _mirror_dim(_mirror_dim(image, pad, -1), pad, -2)


class PaddedEncoder(nn.Module):
    """``encoder`` (a :class:`~semstyle.encoder.VGG19Encoder`) run on the mirror-padded image, each feature map cropped
    to the cells of the unpadded image: ``forward(image, layers) -> {layer: (B, C, h, w)}``, the sizes and cell
    positions of ``encoder(image, layers)``. ``pad`` is rounded up to a multiple of the deepest layer's stride so
    that the cells stay aligned; it costs ``((H + 2·pad)·(W + 2·pad)) / (H·W)`` of the encoder pass (pad 8, forward
    and backward to relu4_2, bf16: +9 % at 512x384, +32 % at 128x96 on a 2-core AMD EPYC)."""

    def __init__(self, encoder: nn.Module, pad: int | None = None):
        super().__init__()
        self.encoder = encoder
        self.pad = int(BORDER_PAD if pad is None else pad)  # read at construction: 0 gives the plain encoder

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    @property
    def precision(self) -> str:
        return self.encoder.precision

    @property
    def pooling(self) -> str:
        return self.encoder.pooling

    def autocast(self):
        return self.encoder.autocast()

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)  # parameters, buffers, submodules
        except AttributeError:  # anything else the wrapped encoder offers (its callers read more than the above)
            return getattr(self._modules["encoder"], name)

    def forward(self, image: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        layers = [layers] if isinstance(layers, str) else list(layers)
        if self.pad <= 0 or not layers:
            return self.encoder(image, layers)
        deepest = max(layer_stride(layer) for layer in layers)
        pad = math.ceil(self.pad / deepest) * deepest
        h, w = image.shape[-2:]
        out = self.encoder(mirror_pad(image, pad), layers)
        cropped = {}
        for layer, feature in out.items():
            s = layer_stride(layer)
            cropped[layer] = feature[..., pad // s : pad // s + h // s, pad // s : pad // s + w // s]
        return cropped
