"""Smoothness of a warp's flow field: DST's total-variation term ``R_TV`` (Kim et al. 2020, eq. 5).

DST's ``loss.TV`` averages the mean squared difference of neighbouring flow vectors over four directions:
horizontal, vertical and the two diagonals. For a smooth field with gradients ``(g_x, g_y)`` per component that is
``(g_x² + g_y² + (g_x + g_y)² + (g_x − g_y)²) / 4 = ¾ (g_x² + g_y²)``, while the two-direction
:func:`semstyle.losses.tv_loss` gives ``g_x² + g_y²``: with the same γ the latter regularises a third more and
stops the warp earlier (docs/dst.md). DST's weights (γ = 50) are for this four-direction form.

Units: the flow is in pixels of the scale it is evaluated at and each difference spans one pixel, so the value is a
mean squared Jacobian entry (dimensionless): the same for one warp evaluated at 64 or at 256 px.
"""

from __future__ import annotations

import torch

from ..errors import SemstyleError


def flow_tv(flow: torch.Tensor) -> torch.Tensor:
    """DST's ``R_TV`` of a flow ``(B, 2, H, W)``: the mean of ``mean|f(q) − f(q + d)|²`` over the four neighbour
    offsets ``d`` = (0, 1), (1, 0), (1, 1), (1, −1) (DST ``loss.py``, ``TV``)."""
    if flow.ndim != 4 or min(flow.shape[-2:]) < 2:
        raise SemstyleError(f"flow_tv: expected a (B, C, H, W) flow with H, W >= 2, got shape {tuple(flow.shape)}")
    vertical = (flow[:, :, 1:] - flow[:, :, :-1]).pow(2).mean()
    horizontal = (flow[..., 1:] - flow[..., :-1]).pow(2).mean()
    diagonal = (flow[:, :, 1:, 1:] - flow[:, :, :-1, :-1]).pow(2).mean()
    anti = (flow[:, :, 1:, :-1] - flow[:, :, :-1, 1:]).pow(2).mean()
    return (vertical + horizontal + diagonal + anti) / 4
