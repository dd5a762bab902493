"""Image warps driven by sparse keypoints: the thin-plate-spline warp of Deformable Style Transfer, its flow field
and pictures of it."""

from .tps import BORDER_PER_SIDE, COARSE_GRID, border_points, flow_to_grid, tps_flow, tps_solve, tps_warp, warp_image
from .smooth import flow_tv
from .viz import draw_points, flow_picture, load_flow, save_flow

__all__ = [
    "BORDER_PER_SIDE", "COARSE_GRID", "border_points", "flow_tv", "flow_to_grid", "tps_flow", "tps_solve", "tps_warp",
    "warp_image", "draw_points", "flow_picture", "load_flow", "save_flow",
]
