"""Sparse cross-domain correspondences: Neural Best-Buddies keypoints, DST point cleaning, keypoint I/O."""

from .align import apply_similarity, similarity_align, umeyama
from .io import read_correspondences, read_keypoints, write_correspondences, write_keypoints
from .nbb import Correspondences, LevelMatches, nbb_keypoints
from .plot import draw_correspondences
from .select import kmeans_select

__all__ = [
    "read_keypoints", "write_keypoints", "read_correspondences", "write_correspondences",
    "umeyama", "similarity_align", "apply_similarity",
    "nbb_keypoints", "Correspondences", "LevelMatches", "kmeans_select", "draw_correspondences",
]
