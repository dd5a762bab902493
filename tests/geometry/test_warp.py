"""Thin-plate-spline warp (semstyle.geometry.tps): identity, fixed border, point motion, coarse vs exact, gradients."""

from __future__ import annotations

import pytest
import torch

from semstyle.errors import SemstyleError
from semstyle.geometry import border_points, load_flow, save_flow, tps, tps_flow, tps_warp, warp_image
from semstyle.viz.points import flow_picture


def _separated_points(n: int, h: int, w: int, margin: float, min_dist: float, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    pts: list[torch.Tensor] = []
    while len(pts) < n:
        p = torch.rand(2, generator=gen) * torch.tensor([w - 2 * margin, h - 2 * margin]) + margin
        if all((p - q).norm() >= min_dist for q in pts):
            pts.append(p)
    return torch.stack(pts)


def _blob(h: int, w: int, centre, sigma: float = 2.5) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    g = torch.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2))
    return g[None, None].expand(1, 3, h, w).clone()


def _centroid(image: torch.Tensor) -> torch.Tensor:
    m = image[0, 0]
    ys, xs = torch.meshgrid(
        torch.arange(m.shape[0], dtype=m.dtype), torch.arange(m.shape[1], dtype=m.dtype), indexing="ij"
    )
    return torch.stack([(m * xs).sum(), (m * ys).sum()]) / m.sum()


def test_identity_at_zero_theta():
    image = torch.rand(2, 3, 80, 112)
    points = _separated_points(12, 80, 112, 10, 12)
    warped, flow = tps_warp(image, points, torch.zeros_like(points))
    assert flow.shape == (1, 2, 80, 112)
    assert flow.abs().max() < 1e-3
    assert (warped - image).abs().max() < 1e-3


def test_border_points_have_zero_flow():
    h, w = 96, 128
    assert border_points(h, w).shape == (4 + 4 * 80, 2)
    points = _separated_points(16, h, w, 16, 12)
    theta = torch.randn(16, 2) * 4
    flow = tps_flow(points, theta, (h, w))
    assert flow.abs().max() > 3  # the warp does move things inside
    edges = torch.cat([flow[..., 0, :], flow[..., -1, :], flow[..., :, 0], flow[..., :, -1]], -1)
    assert edges.abs().max() < 0.05


def test_moving_one_keypoint_moves_the_image_near_it():
    h = w = 96
    points = torch.tensor([[40.0, 50.0], [20.0, 20.0], [75.0, 25.0], [25.0, 78.0], [78.0, 72.0]])
    move = torch.tensor([6.0, -4.0])
    theta = torch.zeros_like(points)
    theta[0] = move
    image = _blob(h, w, points[0].tolist())
    warped, flow = tps_warp(image, points, theta.double())
    # the neighbourhood of the keypoint reappears, shifted by the displacement (the TPS is locally ~a translation)
    sx, sy = points[0].long().tolist()
    x, y = (points[0] + move).long().tolist()
    before, after = image[0, 0, sy - 3 : sy + 4, sx - 3 : sx + 4], warped[0, 0, y - 3 : y + 4, x - 3 : x + 4]
    assert (after - before).abs().max() < 0.06
    assert torch.allclose(_centroid(warped), points[0].double() + move.double(), atol=0.6)
    # the flow at the destination is the displacement, and the other keypoints stay put
    assert torch.allclose(flow[0, :, y, x].float(), move, atol=0.3)
    for px, py in points[1:].long().tolist():
        assert flow[0, :, py, px].abs().max() < 0.05


def test_coarse_grid_agrees_with_full_resolution():
    h, w = 128, 112
    points = _separated_points(24, h, w, 14, 14)
    # a smooth warp: a gentle global shear plus a few pixels of independent motion per point
    centred = points - points.mean(0)
    theta = 0.06 * centred @ torch.tensor([[0.0, 1.0], [1.0, 0.0]]) + torch.randn(24, 2) * 1.5
    coarse = tps_flow(points, theta, (h, w), grid=64)
    exact = tps_flow(points, theta, (h, w), grid=None)
    assert exact.norm(dim=1).max() > 4
    assert (coarse - exact).norm(dim=1).max() < 0.5
    image = torch.rand(1, 3, h, w)
    assert (warp_image(image, coarse) - warp_image(image, exact)).abs().mean() < 0.02


def test_gradients_reach_theta_and_image():
    h, w = 20, 24
    points = torch.tensor([[7.0, 6.0], [16.0, 8.0], [11.0, 14.0]], dtype=torch.float64)
    theta = (torch.randn(3, 2, dtype=torch.float64) * 0.7).requires_grad_()
    image = _blob(h, w, (12.3, 9.7), sigma=3.0).requires_grad_()
    weights = torch.rand(1, 3, h, w, dtype=torch.float64)

    def f(t, img):
        warped, flow = tps_warp(img, points, t, border=3, grid=12)
        return (warped * weights).sum() + flow.pow(2).mean()

    # full Jacobian for θ; fast mode (random projections) covers the 1440 pixels too
    assert torch.autograd.gradcheck(lambda t: f(t, image.detach()), (theta,), eps=1e-6, atol=1e-5, rtol=1e-3)
    assert torch.autograd.gradcheck(f, (theta, image), eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)


def test_bad_points_are_one_line_errors():
    image = torch.rand(1, 3, 32, 32)
    points = torch.rand(4, 2) * 20 + 5
    with pytest.raises(SemstyleError, match="NaN"):
        tps_warp(image, points, torch.full((4, 2), float("nan")))
    with pytest.raises(SemstyleError, match=r"\(N, 2\)"):
        tps_warp(image, torch.rand(4, 3), torch.zeros(4, 3))
    with pytest.raises(SemstyleError, match="displacements"):
        tps_warp(image, points, torch.zeros(3, 2))


def test_flow_file_and_picture(tmp_path):
    h, w = 48, 64
    points = _separated_points(6, h, w, 8, 10)
    theta = torch.randn(6, 2) * 3
    flow = tps_flow(points, theta, (h, w))
    path = save_flow(tmp_path / "flow.flo", flow)
    assert torch.equal(load_flow(path), flow)
    pic = flow_picture(torch.rand(1, 3, h, w), flow, points, points + theta)
    assert pic.size == (w, h)
    with pytest.raises(SemstyleError, match="PIEH"):
        (tmp_path / "bad.flo").write_bytes(b"nope")
        load_flow(tmp_path / "bad.flo")


def test_kernel_product_gradient_is_autograds_of_the_formula():
    """The TPS kernel product's hand-written backward against autograd's on the plain formula (float64), including
    points that coincide with a centre (d = 0, where the kernel's gradient needs care), and a gradcheck."""
    torch.manual_seed(0)
    x = torch.rand(1, 50, 2, dtype=torch.float64, requires_grad=True)
    c = torch.cat([torch.rand(1, 20, 2, dtype=torch.float64), x[:, :3].detach()], 1).requires_grad_(True)
    w = torch.randn(1, 23, 2, dtype=torch.float64, requires_grad=True)
    reference = tps._kernel(tps._squared_distance(x, c)) @ w
    fast = tps._KernelProduct.apply(x, c, w)
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-14)
    g = torch.randn_like(reference)
    for a, b in zip(
        torch.autograd.grad((fast * g).sum(), (x, c, w)), torch.autograd.grad((reference * g).sum(), (x, c, w))
    ):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    shapes = [(1, 30, 2), (1, 10, 2), (1, 10, 3)]
    small = [torch.rand(*shape, dtype=torch.float64, requires_grad=True) for shape in shapes]
    assert torch.autograd.gradcheck(tps._KernelProduct.apply, small)
