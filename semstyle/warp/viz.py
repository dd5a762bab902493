"""Pictures and files of a warp: keypoints marked on an image, the flow as a warped grid with arrows, ``.flo``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..errors import SemstyleError
from ..core.image import atomic_write, to_pil
from .tps import warp_image


def point_colors(n: int) -> list[tuple[int, int, int]]:
    """``n`` distinct RGB colours (golden-angle hues), the same for the same ``n`` so pictures can be compared."""
    import colorsys

    return [tuple(int(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.85, 1.0)) for i in range(n)]


def _xy(points) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in torch.as_tensor(points).detach().cpu().reshape(-1, 2).tolist()]


def draw_points(image: torch.Tensor | Image.Image, points, targets=None, radius: float | None = None) -> Image.Image:
    """``image`` with ``points`` ``(N, 2)`` (x, y) as coloured dots; with ``targets`` ``(N, 2)``, a ring at each
    target and a line from each point to its target."""
    pil = (image if isinstance(image, Image.Image) else to_pil(image)).convert("RGB")
    draw = ImageDraw.Draw(pil)
    r = radius or max(2.0, max(pil.size) / 120)
    pts = _xy(points)
    colors = point_colors(len(pts))
    if targets is not None:
        for (x, y), (tx, ty), c in zip(pts, _xy(targets), colors):
            draw.line([(x, y), (tx, ty)], fill=c, width=1)
            draw.ellipse([tx - r - 1, ty - r - 1, tx + r + 1, ty + r + 1], outline=c, width=max(1, int(r / 2)))
    for (x, y), c in zip(pts, colors):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=c, outline=(0, 0, 0))
    return pil


def _grid_lines(h: int, w: int, spacing: int) -> torch.Tensor:
    """``(1, 1, H, W)`` mask of 1-px lines every ``spacing`` px (and on the last row/column)."""
    mask = torch.zeros(1, 1, h, w)
    mask[..., ::spacing, :] = 1
    mask[..., :, ::spacing] = 1
    mask[..., -1, :] = 1
    mask[..., :, -1] = 1
    return mask


def flow_picture(image: torch.Tensor, flow: torch.Tensor, src=None, dst=None, spacing: int | None = None) -> Image.Image:
    """A picture of a warp: ``image`` ``(1, 3, H, W)`` (usually the warped one) faded, a regular grid warped by
    ``flow`` ``(1, 2, H, W)`` drawn over it, and arrows from the source points ``src`` to ``dst`` ``(N, 2)``."""
    _, _, h, w = image.shape
    spacing = spacing or max(4, max(h, w) // 24)
    lines = warp_image(_grid_lines(h, w, spacing).to(flow), flow.detach()).clamp(0, 1).cpu()
    faded = 0.35 + 0.65 * image.detach().float().cpu()
    ink = torch.tensor([0.1, 0.9, 1.0]).view(1, 3, 1, 1)
    pil = to_pil(faded * (1 - 0.8 * lines) + 0.8 * lines * ink)
    if src is not None and dst is not None:
        draw = ImageDraw.Draw(pil)
        r = max(2.0, max(h, w) / 150)
        for (x0, y0), (x1, y1), c in zip(_xy(src), _xy(dst), point_colors(len(_xy(src)))):
            draw.line([(x0, y0), (x1, y1)], fill=c, width=max(1, int(r / 1.5)))
            _arrow_head(draw, (x0, y0), (x1, y1), 2.5 * r, c)
            draw.ellipse([x0 - r / 2, y0 - r / 2, x0 + r / 2, y0 + r / 2], fill=c)
    return pil


def _arrow_head(draw: ImageDraw.ImageDraw, start, end, size: float, color) -> None:
    d = np.subtract(end, start)
    length = float(np.hypot(*d))
    if length < 1e-6:
        return
    u = d / length
    n = np.array([-u[1], u[0]])
    tip = np.array(end)
    base = tip - u * min(size, length)
    draw.polygon([tuple(tip), tuple(base + n * size / 2), tuple(base - n * size / 2)], fill=color)


def save_flow(path: str | os.PathLike, flow: torch.Tensor) -> Path:
    """Write a flow ``(1, 2, H, W)`` in pixels as a Middlebury ``.flo`` file (``PIEH``, width, height, then
    float32 ``(dx, dy)`` row by row; ``cv2.readOpticalFlow`` reads it), atomically."""
    arr = flow.detach().float().cpu()[0].permute(1, 2, 0).numpy()  # (H, W, 2)
    h, w, _ = arr.shape

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(b"PIEH")
            np.array([w, h], dtype=np.int32).tofile(f)
            np.ascontiguousarray(arr, dtype=np.float32).tofile(f)

    return atomic_write(path, write)


def load_flow(path: str | os.PathLike) -> torch.Tensor:
    """Read a ``.flo`` file written by :func:`save_flow` -> ``(1, 2, H, W)``."""
    with open(path, "rb") as f:
        if f.read(4) != b"PIEH":
            raise SemstyleError(f"flow file {path}: not a .flo file (no PIEH header)")
        w, h = np.fromfile(f, dtype=np.int32, count=2)
        arr = np.fromfile(f, dtype=np.float32, count=int(w) * int(h) * 2).reshape(int(h), int(w), 2)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)[None]
