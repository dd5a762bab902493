"""A partner image under a known warp, and PCK against it: NBB's ground truth in tests/geometry/test_nbb.py and in
benchmarks/bench_nbb.py (which imports this module, free of pytest and conftest, from the tests folder)."""

from __future__ import annotations

import math

import kornia
import torch
import torch.nn.functional as F


def known_warp(image: torch.Tensor, out_hw: tuple[int, int], angle=8.0, scale=1.1, shift=(4.0, -3.0), bend=6.0):
    """Partner image B(q) = A(g(q)) of another size, by a rotation/scale/shift plus a smooth Gaussian bend (a
    TPS-like local push), then a strong appearance change (channel rotation, gamma 0.7, Gaussian blur).

    Returns ``(B, g)``, ``g``: ``(N, 2)`` B pixels (x, y) -> A pixels.
    """
    _, _, h, w = image.shape
    hb, wb = out_hw
    th = math.radians(angle)
    rot = torch.tensor([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]]) / scale
    centre_a, centre_b = torch.tensor([(w - 1) / 2, (h - 1) / 2]), torch.tensor([(wb - 1) / 2, (hb - 1) / 2])
    stretch = torch.tensor([w / wb, h / hb])

    def g(q):
        u = (q - centre_b) * stretch
        r2 = ((u / torch.tensor([w, h])) ** 2).sum(1, keepdim=True)
        return u @ rot.T + centre_a + torch.tensor(shift) + bend * torch.exp(-r2 / 0.08) * torch.tensor([1.0, 0.5])

    ys, xs = torch.meshgrid(torch.arange(hb).float(), torch.arange(wb).float(), indexing="ij")
    src = g(torch.stack([xs.flatten(), ys.flatten()], 1))
    grid = torch.stack([(src[:, 0] + 0.5) / w * 2 - 1, (src[:, 1] + 0.5) / h * 2 - 1], 1).view(1, hb, wb, 2)
    warped = F.grid_sample(image, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    restyled = kornia.filters.gaussian_blur2d(warped[:, [2, 0, 1]] ** 0.7, (5, 5), (1.2, 1.2))
    return restyled.clamp(0, 1), g


def forward_map(g, points_a: torch.Tensor) -> torch.Tensor:
    """Where points of A land in B: invert ``g`` by Newton steps with its (constant) linear part."""
    probe = g(torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]))
    jac_inv = torch.linalg.inv(torch.stack([probe[0] - probe[1], probe[2] - probe[1]], 1))
    q = points_a.clone()
    for _ in range(60):
        q = q - (g(q) - points_a) @ jac_inv.T
    assert (g(q) - points_a).abs().max() < 1e-3
    return q


def pck(points_a, points_b, g, hw, alpha=0.05) -> float:
    """Percentage of correct keypoints: the share of pairs whose B point lies within ``alpha`` times the ``(H, W)``
    image's diagonal of where A's point truly lands in B."""
    err = (forward_map(g, points_a) - points_b).norm(dim=1)
    return (err <= alpha * math.hypot(*hw)).float().mean().item()
