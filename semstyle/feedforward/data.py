"""Training images for the feed-forward networks: any folders or files of photos, read with random rescaling,
crops and flips.

The order is a pure function of ``(seed, position)``: sample ``i`` of a run is the same whether the run went
straight through or was resumed at step ``i // batch``, so a resumed run sees the data an uninterrupted one would.
"""

from __future__ import annotations

import functools
import importlib.resources
import math

import numpy as np
import torch
import torch.nn.functional as F

from ..conf.checks import list_images
from ..core.image import load_image
from ..errors import ConfigError, SemstyleError, check


def sklearn_sample_photos() -> list[str]:
    """scikit-learn's two bundled photos (``china.jpg``, ``flower.jpg``; CC BY 2.0, see their README.txt)."""
    try:
        folder = importlib.resources.files("sklearn.datasets") / "images"
    except ModuleNotFoundError:
        return []
    return [str(folder / name) for name in ("china.jpg", "flower.jpg") if (folder / name).is_file()]


def bundled_training_photos() -> list[str]:
    """The photos bundled for training (``semstyle/assets/training/``: four of scikit-image's sample photos and 23
    of the Kodak suite's, all but the held-out kodim15; CC0, public domain or unrestricted, see
    ``semstyle/assets/README.md``), sorted by name."""
    folder = importlib.resources.files("semstyle") / "assets" / "training"
    return sorted(str(p) for p in folder.iterdir() if p.name.endswith(".jpg"))


def default_images() -> list[str]:
    """The default training set: scikit-learn's sample photos, the bundled training photos and the bundled
    Tübingen photo (CC BY 3.0).

    The bundled astronaut photo is left out on purpose: it is the default validation photo.
    """
    tubingen = str(importlib.resources.files("semstyle") / "assets" / "content/tubingen.jpg")
    return sklearn_sample_photos() + bundled_training_photos() + [tubingen]


class CropDataset:
    """Square samples of ``images``: each image is rescaled so its short side is the crop size times a factor drawn
    from ``rescale`` (uniform), cropped at a random place and flipped left-right with probability ½.

    The crop size of batch ``step`` is ``crop`` times one of ``factors``, drawn per batch (:meth:`crop_size`), so a
    network learns at several output sizes; with the default ``factors=(1.0,)`` every batch is ``crop × crop``.

    ``sample(i, size)`` is a ``(3, size, size)`` tensor in [0, 1] that depends only on ``(seed, i, size)``;
    ``batch(step, b)`` stacks samples ``step·b … step·b + b − 1`` into ``(b, 3, s, s)``, with ``s = crop_size(step)``.
    Images are read once and cached on ``device``, where the rescaling and cropping run (on an H200, 4 crops of
    1024 px took 30 ms on the CPU, an eighth of a training step, and 1.3 ms there; docs/feedforward.md). The draws
    are the same on every device; the resampled pixels agree to float rounding. The cache holds 8-bit pixels (what
    the files hold, so the crops are the same values as from float images), and a photo whose short side exceeds
    the largest ever drawn (``crop × rescale[1]``) is shrunk to it once when read: a folder of 12-megapixel photos
    would otherwise hold 144 MB per cached image, and resample each whole for every crop.
    """

    def __init__(self, images, crop: int, rescale=(1.0, 1.5), seed: int = 0, factors=(1.0,), device="cpu"):
        self.files = list_images(images)
        self.crop = int(crop)
        lo, hi = float(rescale[0]), float(rescale[1])
        check(0 < lo <= hi, f"rescale: need 0 < min <= max, got {list(rescale)}")
        self.rescale = (lo, hi)
        self.seed = int(seed)
        self.factors = [float(f) for f in factors]
        self.device = torch.device(device)

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one dataset per run; the cache dies with it
    def _image(self, index: int) -> torch.Tensor:
        """Image ``index`` as ``(1, 3, H, W)`` uint8 on the device, its short side at most ``crop × rescale[1]``."""
        try:
            image = load_image(self.files[index], what="training image")
        except SemstyleError:  # it names the file already
            raise
        except Exception as e:
            raise ConfigError(f"training image {self.files[index]}: {e}") from None
        h, w = image.shape[-2:]
        largest = math.ceil(self.crop * self.rescale[1])
        if min(h, w) > largest:
            f = largest / min(h, w)
            size = (max(largest, round(h * f)), max(largest, round(w * f)))
            image = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
        return (image.clamp(0, 1) * 255).round().to(torch.uint8).to(self.device)

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch, 0]).permutation(len(self.files))

    def crop_size(self, step: int) -> int:
        """The side of batch ``step``'s crops: a pure function of ``(seed, step)``, as the samples are."""
        k = int(np.random.default_rng([self.seed, int(step), 2]).integers(len(self.factors)))
        return round(self.crop * self.factors[k])

    def sample(self, i: int, size: int | None = None) -> torch.Tensor:
        size = self.crop if size is None else int(size)
        epoch, k = divmod(int(i), len(self.files))
        index = int(self._order(epoch)[k])
        rng = np.random.default_rng([self.seed, int(i), 1])
        image = self._image(index).float() / 255
        h, w = image.shape[-2:]
        scale = size * rng.uniform(*self.rescale) / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        image = F.interpolate(image, size=(nh, nw), mode="bilinear", align_corners=False, antialias=scale < 1)
        y, x = int(rng.integers(0, nh - size + 1)), int(rng.integers(0, nw - size + 1))
        out = image[0, :, y : y + size, x : x + size]
        if rng.random() < 0.5:
            out = out.flip(-1)
        return out.clamp(0, 1).contiguous()

    def batch(self, step: int, count: int) -> torch.Tensor:
        crop = self.crop_size(step)
        return torch.stack([self.sample(step * count + j, crop) for j in range(count)])
