"""Keypoint files in the DST / NBB text format, read without torch.

Text format (DST ``cleanpoints.py``, NBB ``save_points``): one point per line, ``row, col`` (y first), integers in
the image's own pixels; line i of ``correspondence_A.txt`` matches line i of ``correspondence_B.txt``; the optional
``correspondence_activation.txt`` holds one float per line.

Here the points come back as lists of **(x, y)** pairs (x = column, y = row), the order every tensor of the
package uses; :mod:`semstyle.geometry.keypoints.io` turns them into tensors. Torch-free so that the command line
can say what is wrong with a file before the network loads (issue 17).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from ..errors import SemstyleError
from .checks import check_file

Points = list[tuple[float, float]]


def _lines(path: str | os.PathLike, what: str) -> list[tuple[int, str]]:
    """Non-blank lines of a text file as ``(line number, text)``; one-line errors for unreadable files."""
    path = Path(path)
    check_file(path, what)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SemstyleError(f"{what} {path}: not a readable text file ({e.__class__.__name__})") from None
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def _number(text: str, path, lineno: int, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SemstyleError(f"{what} {path}, line {lineno}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise SemstyleError(f"{what} {path}, line {lineno}: {text!r} is not a finite number")
    return value


def parse_keypoints(
    path: str | os.PathLike, image_size: tuple[int, int] | None = None, what: str = "keypoint file"
) -> Points:
    """The ``(x, y)`` points of a ``row, col`` keypoint file (blank lines are ignored; an empty file gives ``[]``).

    ``image_size`` ``(H, W)``, when given, requires ``0 <= x < W`` and ``0 <= y < H``; ``what`` names the file in
    errors. Raises :class:`SemstyleError` naming the file and line for a malformed line, a non-finite number or a
    point outside the image.
    """
    points = []
    for lineno, line in _lines(path, what):
        parts = [p.strip() for p in line.replace("\t", ",").split(",") if p.strip()]
        if len(parts) == 1 and len(line.split()) == 2:  # tolerate "row col" written with a space
            parts = line.split()
        if len(parts) != 2:
            raise SemstyleError(f"{what} {path}, line {lineno}: expected 'row, col', got {line!r}")
        r, c = (_number(p, path, lineno, what) for p in parts)
        if image_size is not None:
            h, w = image_size
            if not (0 <= r < h and 0 <= c < w):
                raise SemstyleError(
                    f"{what} {path}, line {lineno}: point (row {r:g}, col {c:g}) is outside the {w}x{h} image"
                )
        points.append((c, r))
    return points


def parse_activation(path: str | os.PathLike, n: int, ref) -> list[float]:
    """The ``n`` numbers of an activation file, one per line, for the ``n`` points of keypoint file ``ref``."""
    values = []
    for lineno, line in _lines(path, "activation file"):
        parts = [p for p in line.replace(",", " ").split() if p]
        if len(parts) != 1:
            raise SemstyleError(f"activation file {path}, line {lineno}: expected one number, got {line!r}")
        values.append(_number(parts[0], path, lineno, "activation file"))
    if len(values) != n:
        raise SemstyleError(f"activation file {path}: {len(values)} values but {ref} has {n} points")
    return values


def parse_correspondences(
    path_a, path_b, activation_path=None, size_a=None, size_b=None
) -> tuple[Points, Points, list[float] | None]:
    """Matching keypoint files: ``(points_a, points_b, activation or None)``, each point ``(x, y)`` in its image's
    pixels; ``size_a``/``size_b`` = ``(H, W)`` enable the range check of :func:`parse_keypoints`. Unequal point
    counts are an error."""
    pa = parse_keypoints(path_a, size_a, "keypoint file A")
    pb = parse_keypoints(path_b, size_b, "keypoint file B")
    if len(pa) != len(pb):
        raise SemstyleError(f"keypoint files {path_a} and {path_b}: {len(pa)} vs {len(pb)} points; they must match")
    activation = None if activation_path is None else parse_activation(activation_path, len(pa), path_a)
    return pa, pb, activation


def check_keypoint_pairs(content_points, style_points, where: str) -> None:
    """Keypoint pairs usable by DST: equal counts, at least 3, finite, and no two content points within half a
    pixel (a warp cannot move one point two ways). Points are ``(x, y)`` pairs (lists, arrays or CPU tensors
    ``(N, 2)``); a one-line :class:`SemstyleError` starting with ``where`` otherwise.

    >>> check_keypoint_pairs([(0, 0), (9, 0), (0, 9)], [(1, 1), (8, 1), (1, 8)], "points")
    >>> check_keypoint_pairs([(0, 0), (9, 0), (0.2, 0.1)], [(1, 1), (8, 1), (1, 8)], "points")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    semstyle.errors.SemstyleError: points: content keypoints 1 and 3 are the same pixel (0, 0); a warp cannot ...
    """
    content = [(float(x), float(y)) for x, y in content_points]
    style = [(float(x), float(y)) for x, y in style_points]
    if len(content) != len(style):
        raise SemstyleError(f"{where}: {len(content)} content but {len(style)} style keypoints; they must pair up")
    if len(content) < 3:
        raise SemstyleError(f"{where}: {len(content)} keypoint pairs; DST needs at least 3")
    if not all(math.isfinite(v) for point in content + style for v in point):
        raise SemstyleError(f"{where}: keypoints contain NaN or infinite values")
    # points closer than half a pixel share a cell of a half-pixel grid or lie in neighbouring cells
    cells: dict[tuple[int, int], list[int]] = {}
    for j, (x, y) in enumerate(content):
        cx, cy = math.floor(x / 0.5), math.floor(y / 0.5)
        near = [i for dx in (-1, 0, 1) for dy in (-1, 0, 1) for i in cells.get((cx + dx, cy + dy), ())]
        same = [i for i in near if math.dist(content[i], (x, y)) < 0.5]
        if same:
            i = min(same)
            raise SemstyleError(
                f"{where}: content keypoints {i + 1} and {j + 1} are the same pixel "
                f"({content[i][0]:g}, {content[i][1]:g}); a warp cannot move one point two ways"
            )
        cells.setdefault((cx, cy), []).append(j)
