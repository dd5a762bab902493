"""Flow files: a warp's flow field as a Middlebury ``.flo`` file, written and read with OpenCV
(``cv2.writeOpticalFlow`` / ``cv2.readOpticalFlow``), the format optical-flow tools read."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch

from ..core.image import atomic_write
from ..errors import SemstyleError


def save_flow(path: str | os.PathLike, flow: torch.Tensor) -> Path:
    """Write a flow ``(1, 2, H, W)`` in pixels as a ``.flo`` file (``PIEH``, width, height, float32 ``(dx, dy)`` row
    by row), atomically."""
    arr = np.ascontiguousarray(flow.detach().float().cpu()[0].permute(1, 2, 0).numpy())  # (H, W, 2)

    def write(tmp):
        if not cv2.writeOpticalFlow(str(tmp), arr):
            raise SemstyleError(f"flow file {path}: OpenCV could not write it")

    return atomic_write(path, write, suffix=".flo")


def load_flow(path: str | os.PathLike) -> torch.Tensor:
    """Read a ``.flo`` file (e.g. from :func:`save_flow`) -> ``(1, 2, H, W)``."""
    with open(path, "rb") as f:
        if f.read(4) != b"PIEH":
            raise SemstyleError(f"flow file {path}: not a .flo file (no PIEH header)")
    arr = cv2.readOpticalFlow(str(path))
    if arr is None:
        raise SemstyleError(f"flow file {path}: OpenCV could not read it")
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None]
