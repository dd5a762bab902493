"""Keypoint files in the DST / NBB text format, and a JSON with both sides.

Text format (DST ``cleanpoints.py``, NBB ``save_points``): one point per line, ``row, col`` (y first), integers in
the image's own pixels; line i of ``correspondence_A.txt`` matches line i of ``correspondence_B.txt``; the optional
``correspondence_activation.txt`` holds one float per line.

In memory, points are float tensors ``(N, 2)`` in **(x, y)** order (x = column, y = row, pixel centres at integer
coordinates), so they can go straight into ``grid_sample``-style code after normalisation. The files are parsed,
and ``row, col`` swapped, by the torch-free :mod:`semstyle.conf.keypoint_files` (the command line checks them
there before torch loads); writing swaps back here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ...conf.keypoint_files import parse_correspondences, parse_keypoints
from ...core.image import atomic_write
from ...errors import SemstyleError

FILE_A = "correspondence_A.txt"
FILE_B = "correspondence_B.txt"
FILE_ACTIVATION = "correspondence_activation.txt"
FILE_JSON = "correspondences.json"


def read_keypoints(
    path: str | os.PathLike, image_size: tuple[int, int] | None = None, what: str = "keypoint file"
) -> torch.Tensor:
    """Read a ``row, col`` keypoint file into an ``(N, 2)`` float tensor of **(x, y)** pixel coordinates.

    Args:
        path: the text file (blank lines are ignored; an empty file gives ``(0, 2)``).
        image_size: ``(H, W)`` of the image the points belong to; when given, every point must satisfy
            ``0 <= x < W`` and ``0 <= y < H``.
        what: how error messages name the file.

    Raises :class:`SemstyleError` naming the file and line for a malformed line, a non-finite number or a point
    outside the image (:func:`semstyle.conf.keypoint_files.parse_keypoints`).
    """
    return _points(parse_keypoints(path, image_size, what))


def _points(points) -> torch.Tensor:
    return torch.tensor(points, dtype=torch.float32).reshape(-1, 2)


def _check_points(points: torch.Tensor, name: str) -> torch.Tensor:
    points = torch.as_tensor(points).detach().cpu().double()
    if points.ndim != 2 or points.shape[1] != 2:
        raise SemstyleError(f"{name}: points must have shape (N, 2) in (x, y) order, got {tuple(points.shape)}")
    if not torch.isfinite(points).all():
        raise SemstyleError(f"{name}: points contain NaN or infinite values")
    return points


def write_keypoints(path: str | os.PathLike, points_xy: torch.Tensor) -> Path:
    """Write ``(N, 2)`` (x, y) points as ``row, col`` integer lines (rounded to the nearest pixel), atomically."""
    points = _check_points(points_xy, str(path)).round().long()
    text = "".join(f"{y}, {x}\n" for x, y in points.tolist())
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def read_correspondences(path_a, path_b, activation_path=None, size_a=None, size_b=None):
    """Read matching keypoint files: ``(points_a, points_b, activation or None)``.

    Points are ``(N, 2)`` float (x, y) in each image's pixels; ``size_a``/``size_b`` = ``(H, W)`` enable the
    range check of :func:`read_keypoints`. Unequal point counts are an error
    (:func:`semstyle.conf.keypoint_files.parse_correspondences`).
    """
    return correspondence_tensors(*parse_correspondences(path_a, path_b, activation_path, size_a, size_b))


def correspondence_tensors(points_a, points_b, activation=None):
    """Parsed correspondences (lists of ``(x, y)`` and of activations, :mod:`semstyle.conf.keypoint_files`) as
    :func:`read_correspondences` returns them: ``(N, 2)``, ``(N, 2)`` and ``(N,)`` or None, float32."""
    activation = None if activation is None else torch.tensor(activation, dtype=torch.float32)
    return _points(points_a), _points(points_b), activation


def write_correspondences(out_dir, pa, pb, activation=None, meta: dict | None = None) -> Path:
    """Write ``correspondence_A.txt``, ``correspondence_B.txt``, ``correspondence_activation.txt`` (DST format) and
    ``correspondences.json`` (float (x, y) coordinates of both sides, activations, plus ``meta``) into ``out_dir``.
    """
    out_dir = Path(out_dir)
    pa, pb = _check_points(pa, "points A"), _check_points(pb, "points B")
    if len(pa) != len(pb):
        raise SemstyleError(f"correspondences: {len(pa)} points in A but {len(pb)} in B")
    if activation is not None:
        activation = torch.as_tensor(activation).detach().cpu().double().reshape(-1)
        if len(activation) != len(pa):
            raise SemstyleError(f"correspondences: {len(activation)} activations for {len(pa)} points")
    write_keypoints(out_dir / FILE_A, pa)
    write_keypoints(out_dir / FILE_B, pb)
    if activation is not None:
        text = "".join(f"{v:f}\n" for v in activation.tolist())
        atomic_write(out_dir / FILE_ACTIVATION, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    doc = {
        "format": "semstyle correspondences: points in (x, y) pixels of each original image",
        "points_a": [[round(x, 3), round(y, 3)] for x, y in pa.tolist()],
        "points_b": [[round(x, 3), round(y, 3)] for x, y in pb.tolist()],
        "activation": None if activation is None else [round(v, 6) for v in activation.tolist()],
        **(meta or {}),
    }
    text = "{\n" + ",\n".join(f" {json.dumps(key)}: {json.dumps(value)}" for key, value in doc.items()) + "\n}\n"
    atomic_write(out_dir / FILE_JSON, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return out_dir
