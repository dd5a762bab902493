"""Pictures made of pictures: tile grids, captioned rows, contact sheets. Shared by every figure the package
draws (feature views, doodle sheets, reconstructions, and the reports of the experiment layer)."""

from __future__ import annotations

import math

import torch
from PIL import Image, ImageDraw, ImageFont

from ..core.image import resize, to_pil

CAPTION_PX = 14  # height of a caption line


def grid(tiles: torch.Tensor, ncols: int, pad: int = 2, background: float = 1.0) -> torch.Tensor:
    """``(N, 3, h, w)`` tiles -> one ``(1, 3, H, W)`` image, row-major with ``ncols`` columns and ``pad`` px gaps."""
    n, c, h, w = tiles.shape
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    canvas = torch.full((nrows * ncols, c, h + pad, w + pad), background, dtype=tiles.dtype)
    canvas[:n, :, :h, :w] = tiles
    out = canvas.reshape(nrows, ncols, c, h + pad, w + pad).permute(2, 0, 3, 1, 4)
    return out.reshape(1, c, nrows * (h + pad), ncols * (w + pad))[..., : -pad or None, : -pad or None]


def captioned_row(panels, captions, pad: int = 6) -> Image.Image:
    """Images (tensors ``(1, 3, H, W)`` or Pillow) side by side, top-aligned on white, each with a caption above."""
    pils = [p if isinstance(p, Image.Image) else to_pil(p) for p in panels]
    width = sum(p.width for p in pils) + pad * (len(pils) - 1)
    height = max(p.height for p in pils) + CAPTION_PX
    canvas = Image.new("RGB", (width, height), "white")
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    x = 0
    for pil, caption in zip(pils, captions):
        canvas.paste(pil, (x, CAPTION_PX))
        draw.text((x + 1, 1), str(caption), fill="black", font=font)
        x += pil.width + pad
    return canvas


def side_by_side(panels: list[torch.Tensor], height: int = 256, gap: int = 6) -> torch.Tensor:
    """Images ``(1, 3, H, W)`` resized to ``height`` and laid side by side on white: ``(1, 3, height, ΣW + gaps)``."""
    resized = [
        resize(p.float().clamp(0, 1), (height, max(1, round(p.shape[-1] * height / p.shape[-2])))) for p in panels
    ]
    white = torch.ones(1, 3, height, gap)
    row = [x for p in resized for x in (p, white)][:-1]
    return torch.cat(row, dim=3)
