"""Training images for the feed-forward networks: any folders or files of photos, read with random rescaling,
crops and flips.

The order is a pure function of ``(seed, position)``: sample ``i`` of a run is the same whether the run went
straight through or was resumed at step ``i // batch``, so a resumed run sees the data an uninterrupted one would.
"""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..core.image import load_image
from ..errors import ConfigError, check

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def sklearn_sample_photos() -> list[str]:
    """scikit-learn's two bundled photos (``china.jpg``, ``flower.jpg``; CC BY 2.0, see their README.txt)."""
    try:
        folder = importlib.resources.files("sklearn.datasets") / "images"
    except ModuleNotFoundError:
        return []
    return [str(folder / name) for name in ("china.jpg", "flower.jpg") if (folder / name).is_file()]


def default_images() -> list[str]:
    """The default training set: scikit-learn's sample photos and the bundled Tübingen photo (CC BY 3.0).

    The bundled astronaut photo is left out on purpose: it is the default validation photo.
    """
    return sklearn_sample_photos() + [str(importlib.resources.files("semstyle") / "assets" / "content/tubingen.jpg")]


def list_images(sources, key: str = "data") -> list[str]:
    """Image files of ``sources`` (files, or folders searched non-recursively), sorted per folder; a one-line
    :class:`ConfigError` names a source that is missing or a folder without images."""
    files: list[str] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            check(found, f"{key}: folder {path} has no images ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        else:
            check(path.is_file(), f"{key}: {path} is not a file or folder")
            files.append(str(path))
    check(files, f"{key}: no training images given")
    return files


class CropDataset:
    """Square ``crop × crop`` samples of ``images``: each image is rescaled so its short side is ``crop`` times a
    factor drawn from ``rescale`` (uniform), cropped at a random place and flipped left-right with probability ½.

    ``sample(i)`` is a ``(3, crop, crop)`` tensor in [0, 1] that depends only on ``(seed, i)``; ``batch(step, b)``
    stacks samples ``step·b … step·b + b − 1`` into ``(b, 3, crop, crop)``. Images are read once and cached.
    """

    def __init__(self, images, crop: int, rescale=(1.0, 1.5), seed: int = 0):
        self.files = list_images(images)
        self.crop = int(crop)
        lo, hi = float(rescale[0]), float(rescale[1])
        check(0 < lo <= hi, f"rescale: need 0 < min <= max, got {list(rescale)}")
        self.rescale = (lo, hi)
        self.seed = int(seed)

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one dataset per run; the cache dies with it
    def _image(self, index: int) -> torch.Tensor:
        try:
            return load_image(self.files[index], what="training image")
        except ConfigError:
            raise
        except Exception as e:
            raise ConfigError(f"training image {self.files[index]}: {e}") from None

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch, 0]).permutation(len(self.files))

    def sample(self, i: int) -> torch.Tensor:
        epoch, k = divmod(int(i), len(self.files))
        index = int(self._order(epoch)[k])
        rng = np.random.default_rng([self.seed, int(i), 1])
        image = self._image(index)
        h, w = image.shape[-2:]
        scale = self.crop * rng.uniform(*self.rescale) / min(h, w)
        nh, nw = max(self.crop, round(h * scale)), max(self.crop, round(w * scale))
        image = F.interpolate(image, size=(nh, nw), mode="bilinear", align_corners=False, antialias=scale < 1)
        y, x = int(rng.integers(0, nh - self.crop + 1)), int(rng.integers(0, nw - self.crop + 1))
        out = image[0, :, y : y + self.crop, x : x + self.crop]
        if rng.random() < 0.5:
            out = out.flip(-1)
        return out.clamp(0, 1).contiguous()

    def batch(self, step: int, size: int) -> torch.Tensor:
        return torch.stack([self.sample(step * size + j) for j in range(size)])
