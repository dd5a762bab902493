"""Sparse cross-domain correspondences: Neural Best-Buddies keypoints, DST point cleaning, keypoint I/O.

Points are ``(N, 2)`` float tensors in (x, y) pixel order of each image's original size; the DST text files store
``row, col`` (see :mod:`.io`).
"""

from .align import apply_similarity, similarity_align, umeyama
from .clean import aligned_targets, clean_points
from .io import read_correspondences, read_keypoints, write_correspondences, write_keypoints
from .nbb import Correspondences, LevelMatches, nbb_keypoints
from .select import kmeans_select

__all__ = [
    "read_keypoints",
    "write_keypoints",
    "read_correspondences",
    "write_correspondences",
    "umeyama",
    "similarity_align",
    "apply_similarity",
    "nbb_keypoints",
    "Correspondences",
    "LevelMatches",
    "kmeans_select",
    "clean_points",
    "aligned_targets",
]
