"""Geometry: thin-plate-spline warps and their flow fields (:mod:`.tps`, :mod:`.flow`), and sparse keypoints
(:mod:`.keypoints`: Neural Best-Buddies, DST's cleaning, alignment, keypoint files, face landmarks)."""

from .flow import load_flow, save_flow
from .tps import BORDER_PER_SIDE, COARSE_GRID, border_points, flow_to_grid, tps_flow, tps_solve, tps_warp, warp_image

__all__ = [
    "BORDER_PER_SIDE",
    "COARSE_GRID",
    "border_points",
    "flow_to_grid",
    "tps_flow",
    "tps_solve",
    "tps_warp",
    "warp_image",
    "load_flow",
    "save_flow",
]
