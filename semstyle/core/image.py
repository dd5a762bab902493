"""Image input and output.

Images are float tensors of shape ``(1, 3, H, W)``, RGB in [0, 1]. Loading accepts any common file Pillow reads
(grey, palette, RGBA/LA composited on white, 16-bit, EXIF-rotated, a ``.jpg`` that is really a PNG); saving is
atomic (temp file in the same folder, then rename) so a crash never leaves a half-written PNG.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from ..conf.checks import image_errors, open_image
from ..conf.sizes import Size, target_size
from ..errors import ImageError


def _open(path: str | os.PathLike | None, what: str) -> Image.Image:
    img = open_image(path, what)
    with image_errors(path, what):
        img.load()
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block should not make the pixels unusable
        return img


def pil_to_array(img: Image.Image) -> np.ndarray:
    """Any Pillow image -> float32 RGB array ``(H, W, 3)`` in [0, 1]; alpha is composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        peak = arr.max(initial=0)
        if img.mode.startswith("I;16") or (img.mode == "I" and peak > 255):
            scale = 65535.0
        else:
            scale = 1.0 if img.mode == "F" and peak <= 1 else 255.0
        grey = np.clip(arr / scale, 0, 1)
        return np.repeat(grey[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3:]
        return rgba[..., :3] * alpha + (1.0 - alpha)
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def load_image(path: str | os.PathLike, size: Size = None, what: str = "image") -> torch.Tensor:
    """Read an image file as a ``(1, 3, H, W)`` float RGB tensor in [0, 1].

    Args:
        path: the file.
        size: ``None`` (keep), an int (long side in px, aspect kept) or ``(H, W)``.
        what: how errors name the file (``"content image"``, ``"style map"``...).
    """
    img = _open(path, what)
    arr = pil_to_array(img)
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"{what} {path}: image has zero size")
    image = torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()
    return resize(image, size) if size is not None else image


def source_name(what: str, source) -> str:
    """How a message names an input given to :func:`as_image`: ``what`` and its path, or ``what`` alone for a
    tensor."""
    return what if isinstance(source, torch.Tensor) else f"{what} {source}"


def as_image(source, what: str = "image", loader=None) -> torch.Tensor:
    """An image given as a path (read by ``loader``, default :func:`load_image`) or as a tensor, checked to be
    ``(1, 3, H, W)``; returned as a contiguous float tensor. What every ``stylize(content, style, ...)`` accepts."""
    if not isinstance(source, torch.Tensor):
        return (loader or load_image)(source, what=what)
    if source.ndim != 4 or source.shape[:2] != (1, 3):
        raise ImageError(
            f"{what}: expected an RGB tensor (1, 3, H, W) in [0, 1] or an image path, got shape {tuple(source.shape)}"
        )
    return source.float().contiguous()


def resize(image: torch.Tensor, size: Size, mode: str = "bicubic") -> torch.Tensor:
    """Resize ``(B, C, H, W)`` to ``size`` (long side int, or ``(H, W)``), antialiased when shrinking.

    Bicubic output is clamped back to [0, 1]; use ``mode="area"`` or ``"nearest"`` for maps.
    """
    h, w = target_size(image.shape[-2], image.shape[-1], size)
    if (h, w) == tuple(image.shape[-2:]):
        return image
    if mode in ("bicubic", "bilinear"):
        out = F.interpolate(image, size=(h, w), mode=mode, align_corners=False, antialias=True)
        return out.clamp(0, 1) if mode == "bicubic" else out
    return F.interpolate(image, size=(h, w), mode=mode)


def to_pil(image: torch.Tensor) -> Image.Image:
    """``(1, 3, H, W)`` or ``(3, H, W)`` tensor in [0, 1] -> 8-bit RGB Pillow image."""
    if image.ndim == 4:
        image = image[0]
    arr = (image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)
    return Image.fromarray(arr)


def atomic_write(path: str | os.PathLike, write, suffix: str = ".tmp") -> Path:
    """Call ``write(tmp_path)`` on a temp file beside ``path``, then rename it over ``path``. ``suffix`` ends the
    temp file's name, for writers that choose the format by the name (OpenCV's)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; results should be readable like any other
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_image(image: torch.Tensor | Image.Image, path: str | os.PathLike) -> Path:
    """Save as PNG (or the format the suffix names) atomically; returns the path."""
    pil = image if isinstance(image, Image.Image) else to_pil(image)
    fmt = Image.registered_extensions().get(Path(path).suffix.lower(), "PNG")
    return atomic_write(path, lambda tmp: pil.save(tmp, format=fmt))
