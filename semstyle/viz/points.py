"""Pictures of points: correspondences between two images (side by side, numbered colour-matched points,
connecting lines), keypoints and their targets on one image, and a warp drawn as a deformed grid with arrows."""

from __future__ import annotations

import colorsys

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..core.image import to_pil
from ..geometry.tps import warp_image

GAP = 12  # white px between the two images


def point_colours(n: int) -> list[tuple[int, int, int]]:
    """``n`` distinct saturated colours (golden-ratio hue steps, so neighbours in the list differ strongly)."""
    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.85, 1.0 if i % 2 else 0.8)
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return out


def position_colours(points: torch.Tensor, size: tuple[int, int]) -> list[tuple[int, int, int]]:
    """Colour by position in the first image (hue from x, brightness from y): for dense sets, a correct mapping shows
    up as the same smooth colour layout in both images."""
    h, w = size
    out = []
    for x, y in points.tolist():
        r, g, b = colorsys.hsv_to_rgb(0.85 * min(max(x / w, 0), 1), 1.0, 1.0 - 0.6 * min(max(y / h, 0), 1))
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return out


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def draw_correspondences(
    image_a: torch.Tensor,
    image_b: torch.Tensor,
    points_a: torch.Tensor,
    points_b: torch.Tensor,
    height: int = 320,
    numbers: bool | None = None,
    lines: bool | None = None,
    title: str | None = None,
) -> Image.Image:
    """Side-by-side picture of two images with matched points.

    Args:
        image_a, image_b: ``(1, 3, H, W)`` RGB in [0, 1] (any sizes).
        points_a, points_b: ``(N, 2)`` (x, y) in each image's own pixels; pair i gets colour i and number i + 1
            (over 100 pairs: colours follow the position in image A, see :func:`position_colours`).
        height: both images are scaled to this height (aspect kept).
        numbers, lines: label points / join pairs; default on for at most 100 pairs (dense levels get dots only).
        title: optional caption drawn on a white strip above.
    """
    n = len(points_a)
    numbers = n <= 100 if numbers is None else numbers
    lines = n <= 100 if lines is None else lines
    pil_a, pil_b = to_pil(image_a), to_pil(image_b)
    sa, sb = height / pil_a.height, height / pil_b.height
    pil_a = pil_a.resize((max(1, round(pil_a.width * sa)), height), Image.LANCZOS)
    pil_b = pil_b.resize((max(1, round(pil_b.width * sb)), height), Image.LANCZOS)
    top = 22 if title else 0
    canvas = Image.new("RGB", (pil_a.width + GAP + pil_b.width, height + top), "white")
    canvas.paste(pil_a, (0, top))
    canvas.paste(pil_b, (pil_a.width + GAP, top))
    draw = ImageDraw.Draw(canvas, "RGBA")
    font = _font(11)
    if title:
        draw.text((4, 4), title, fill="black", font=font)

    def place(p, scale, dx):  # pixel centres: (x + 0.5) * scale - 0.5
        return (float(p[0] + 0.5) * scale - 0.5 + dx, float(p[1] + 0.5) * scale - 0.5 + top)

    colours = point_colours(n) if n <= 100 else position_colours(points_a, tuple(image_a.shape[-2:]))
    pts_a = [place(p, sa, 0) for p in points_a.tolist()]
    pts_b = [place(p, sb, pil_a.width + GAP) for p in points_b.tolist()]
    if lines:
        for (xa, ya), (xb, yb), c in zip(pts_a, pts_b, colours):
            draw.line([(xa, ya), (xb, yb)], fill=c + (150,), width=1)
    radius = 4 if n <= 100 else 2
    for i, (a, b, c) in enumerate(zip(pts_a, pts_b, colours)):
        for x, y in (a, b):
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=c, outline="black")
            if numbers:
                draw.text(
                    (x + radius + 1, y - radius - 6), str(i + 1), fill=c, font=font, stroke_width=2, stroke_fill="black"
                )
    return canvas


def _xy(points) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in torch.as_tensor(points).detach().cpu().reshape(-1, 2).tolist()]


def draw_points(image: torch.Tensor | Image.Image, points, targets=None, radius: float | None = None) -> Image.Image:
    """``image`` with ``points`` ``(N, 2)`` (x, y) as coloured dots; with ``targets`` ``(N, 2)``, a ring at each
    target and a line from each point to its target."""
    pil = (image if isinstance(image, Image.Image) else to_pil(image)).convert("RGB")
    draw = ImageDraw.Draw(pil)
    r = radius or max(2.0, max(pil.size) / 120)
    pts = _xy(points)
    colors = point_colours(len(pts))
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


def flow_picture(
    image: torch.Tensor, flow: torch.Tensor, src=None, dst=None, spacing: int | None = None
) -> Image.Image:
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
        for (x0, y0), (x1, y1), c in zip(_xy(src), _xy(dst), point_colours(len(_xy(src)))):
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
