"""Differentiable thin-plate-spline (TPS) image warp driven by keypoint displacements.

Source keypoints ``P`` ``(N, 2)`` move to ``P + θ``; fixed points on the image border (DST's 4 corners plus
``per_side`` points on each side, Kim et al. 2020, ``utils_keypoints.py``: 4 + 4·80 = 324) keep the frame in
place. The output pixel ``q`` samples the input at ``g(q)``, where ``g`` is the TPS with ``g(P_i + θ_i) = P_i``
(destination to source, the direction an inverse warp by ``grid_sample`` needs).

The spline is the standard minimum-bending-energy TPS (Bookstein 1989) with its kernel centres at the data sites
``P + θ``, solved and evaluated here in a few lines of matrix algebra. kornia's ``get_tps_transform`` is not
used: it builds the kernel matrix between the source *and* the destination points
(``U(|src_i − dst_j|)``), so its interpolant is exact at the points but swings by hundreds of pixels between them
as soon as the two sets differ (measured here: 32 points moved by ~4 px gave offsets of 600-2000 px; kornia issue
#3459 and the "erratic warping" of PR #2690 report the same); its ``warp_points_tps`` evaluates the same formula
as :func:`tps_eval` by broadcasting, ~10x slower than the matrix product.

Evaluating the spline at every pixel costs ``H·W·(N + 324)`` kernel terms (more than a VGG pass at 512 px), and a
TPS is smooth, so it is evaluated on a coarse grid (default 64×64) and the displacement is upsampled bilinearly:
the same warp to a fraction of a pixel (tests/geometry/test_warp.py) for ~1 % of the cost.

Conventions: points are ``(x, y)`` pixel coordinates with pixel centres at integers (as
:mod:`semstyle.correspondence.io` returns them). The flow is ``(B, 2, H, W)`` in pixels, channels ``(dx, dy)``,
``flow(q) = q − g(q)``: how far the content that lands on ``q`` has moved, so ``flow(P_i + θ_i) = θ_i``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import SemstyleError

BORDER_PER_SIDE = 80  # DST utils_keypoints.init_keypoint_params: border_num_pts=80
COARSE_GRID = 64


def border_points(height: int, width: int, per_side: int = BORDER_PER_SIDE) -> torch.Tensor:
    """Fixed points ``(4 + 4·per_side, 2)`` (x, y): the 4 corner pixels and ``per_side`` evenly spaced points on
    each edge, as DST's ``init_keypoint_params``."""
    xs = torch.linspace(0, width - 1, per_side + 2)[1:-1]
    ys = torch.linspace(0, height - 1, per_side + 2)[1:-1]
    w1, h1 = float(width - 1), float(height - 1)
    corners = torch.tensor([[0.0, 0.0], [w1, 0.0], [0.0, h1], [w1, h1]])
    sides = [
        torch.stack([xs, torch.zeros_like(xs)], 1),
        torch.stack([xs, torch.full_like(xs, h1)], 1),
        torch.stack([torch.zeros_like(ys), ys], 1),
        torch.stack([torch.full_like(ys, w1), ys], 1),
    ]
    return torch.cat([corners, *sides])


def pixel_lattice(
    h: int, w: int, gh: int | None = None, gw: int | None = None, device=None, dtype=torch.float32
) -> torch.Tensor:
    """``(1, gh, gw, 2)`` pixel (x, y) of a lattice from the first to the last pixel centre of an ``h × w`` image
    (every pixel when ``gh, gw = h, w``)."""
    ys = torch.linspace(0, h - 1, gh or h, device=device, dtype=dtype)
    xs = torch.linspace(0, w - 1, gw or w, device=device, dtype=dtype)
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)[None]


def check_points(points: torch.Tensor, theta: torch.Tensor | None = None, name: str = "keypoints") -> None:
    """One-line errors for keypoint tensors that cannot drive a warp: shape, count, NaN, duplicates."""
    if not isinstance(points, torch.Tensor) or points.ndim != 2 or points.shape[-1] != 2:
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise SemstyleError(f"{name}: expected an (N, 2) tensor of (x, y) points, got {shape}")
    if theta is not None and theta.shape != points.shape:
        raise SemstyleError(f"{name}: displacements have shape {tuple(theta.shape)}, points {tuple(points.shape)}")
    if not torch.isfinite(points).all() or (theta is not None and not torch.isfinite(theta.detach()).all()):
        raise SemstyleError(f"{name}: points or displacements contain NaN or infinite values")


def _squared_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``|a_i − b_j|²`` of ``(B, N, 2)`` and ``(B, M, 2)`` -> ``(B, N, M)``; no square root, so no NaN gradient at 0."""
    return (a[:, :, None] - b[:, None]).pow(2).sum(-1)


def _kernel(squared_distance: torch.Tensor) -> torch.Tensor:
    """TPS radial basis ``U(r) = r² log r = ½ r² log r²``, with ``U(0) = 0`` (and a finite gradient there)."""
    safe = squared_distance.clamp_min(1e-20)
    return torch.where(squared_distance > 0, 0.5 * safe * safe.log(), torch.zeros_like(safe))


def tps_solve(sites: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights of the TPS ``f(x) = a₀ + A·x + Σ_j w_j U(|x − c_j|)`` with centres ``c = sites`` and
    ``f(sites_i) = values_i``: solves ``[[K, P], [Pᵀ, 0]] [w; a] = [values; 0]``, ``K_ij = U(|c_i − c_j|)``,
    ``P = [1, c]``.

    ``sites``, ``values``: ``(B, N, 2)``. Returns ``(kernel weights (B, N, 2), affine weights (B, 3, 2))``, the
    layout of :func:`kornia.geometry.transform.warp_points_tps`.
    """
    b, n, _ = sites.shape
    k = _kernel(_squared_distance(sites, sites))
    p = torch.cat([sites.new_ones(b, n, 1), sites], -1)
    lhs = torch.cat([torch.cat([k, p], -1), torch.cat([p.transpose(1, 2), sites.new_zeros(b, 3, 3)], -1)], 1)
    weights = torch.linalg.solve(lhs, torch.cat([values, values.new_zeros(b, 3, 2)], 1))
    return weights[:, :n], weights[:, n:]


class _KernelProduct(torch.autograd.Function):
    """``K W`` with ``K_ij = U(|x_i − c_j|) = ½ d_ij log d_ij``, ``d_ij = |x_i − c_j|²``, for points ``x``
    ``(B, M, 2)``, centres ``c`` ``(B, N, 2)`` and weights ``W`` ``(B, N, D)``; returns ``(B, M, D)``.

    The backward is written by hand (tested against autograd's on the formula of :func:`_kernel`): with
    ``G = g Wᵀ`` and ``E = G ⊙ ½(log d + 1)``, ``∂/∂W = Kᵀ g``, ``∂/∂c_j = 2 (c_j Σ_i E_ij − Σ_i E_ij x_i)`` and
    ``∂/∂x_i = 2 (x_i Σ_j E_ij − Σ_j E_ij c_j)``: a few passes over the ``M × N`` matrix and three small products,
    where autograd's graph of the formula made about thirty passes (DST evaluates this at every step on a 64×64
    lattice against ~370 centres: 62 ms of a 64 px step before, docs/benchmarks.md). At ``d = 0`` the kernel is 0
    and the pair's terms of ``∂/∂c`` and ``∂/∂x`` vanish, as the ``where`` of :func:`_kernel` makes them.
    """

    @staticmethod
    def forward(ctx, x, c, w):
        d = (x[:, :, None, 0] - c[:, None, :, 0]).square_() + (x[:, :, None, 1] - c[:, None, :, 1]).square_()
        log_d = d.clamp_min(1e-30).log_()  # finite at d = 0, where d · log_d = 0: U(0) = 0
        k = d.mul_(log_d).mul_(0.5)
        ctx.save_for_backward(x, c, w, log_d, k)
        return k @ w

    @staticmethod
    def backward(ctx, g):
        x, c, w, log_d, k = ctx.saved_tensors
        grad_w = k.transpose(1, 2) @ g if ctx.needs_input_grad[2] else None
        if not (ctx.needs_input_grad[0] or ctx.needs_input_grad[1]):
            return None, None, grad_w
        grad_k = g @ w.transpose(1, 2)
        e = torch.addcmul(grad_k, grad_k, log_d).mul_(0.5)  # ∂K/∂d = ½(log d + 1)
        grad_x = 2 * (x * e.sum(2, keepdim=True) - e @ c) if ctx.needs_input_grad[0] else None
        grad_c = 2 * (c * e.sum(1)[..., None] - e.transpose(1, 2) @ x) if ctx.needs_input_grad[1] else None
        return grad_x, grad_c, grad_w


def tps_eval(
    points: torch.Tensor, sites: torch.Tensor, kernel_w: torch.Tensor, affine_w: torch.Tensor, chunk: int = 65536
) -> torch.Tensor:
    """The TPS of :func:`tps_solve` at ``points`` ``(B, M, 2)`` -> ``(B, M, 2)``, ``chunk`` points at a time (the
    kernel matrix of a full-resolution grid would otherwise take ``M·N`` floats at once)."""
    out = []
    for part in points.split(chunk, dim=1):
        k_w = _KernelProduct.apply(part, sites, kernel_w)
        out.append(k_w + affine_w[:, :1] + part @ affine_w[:, 1:])
    return torch.cat(out, 1)


def tps_flow(
    points: torch.Tensor,
    theta: torch.Tensor,
    size: tuple[int, int],
    border: int = BORDER_PER_SIDE,
    grid: int | None = COARSE_GRID,
) -> torch.Tensor:
    """Flow ``(1, 2, H, W)`` (pixels, ``q − g(q)``) of the TPS warp that moves ``points`` ``(N, 2)`` by ``theta``
    ``(N, 2)`` in an image of ``size = (H, W)``, with ``border`` fixed points per side.

    ``grid``: side of the coarse evaluation lattice (``None``, or at least the image size: every pixel).
    Differentiable with respect to ``theta`` (and ``points``).
    """
    check_points(points, theta)
    h, w = size
    dtype, device = theta.dtype, theta.device
    points = points.to(device, dtype)
    fixed = border_points(h, w, border).to(device, dtype) if border > 0 else points.new_zeros(0, 2)
    # Solve in isotropic units (pixels / long side): a TPS is not invariant to stretching x and y differently.
    unit = float(max(h, w))
    src, dst = torch.cat([points, fixed])[None] / unit, torch.cat([points + theta, fixed])[None] / unit
    kernel_w, affine_w = tps_solve(dst, src)  # image warping needs the map output (dst) -> input (src)
    gh, gw = (h, w) if grid is None else (min(grid, h), min(grid, w))
    nodes = pixel_lattice(h, w, gh, gw, device, dtype).reshape(1, gh * gw, 2)
    flow = (nodes - tps_eval(nodes / unit, dst, kernel_w, affine_w) * unit).reshape(1, gh, gw, 2).permute(0, 3, 1, 2)
    if (gh, gw) != (h, w):  # the lattice spans the corner pixel centres, so align_corners=True lands on every pixel
        flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=True)
    return flow


def flow_to_grid(flow: torch.Tensor) -> torch.Tensor:
    """A flow ``(B, 2, H, W)`` in pixels -> the ``grid_sample`` grid ``(B, H, W, 2)`` (``align_corners=False``)."""
    _, _, h, w = flow.shape
    sample = pixel_lattice(h, w, device=flow.device, dtype=flow.dtype) - flow.permute(0, 2, 3, 1)
    return (sample + 0.5) * sample.new_tensor([2.0 / w, 2.0 / h]) - 1


def warp_image(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Warp ``image`` ``(B, C, H, W)`` by a flow ``(1 or B, 2, H, W)`` (pixels, ``q − g(q)``): output pixel ``q``
    samples the input at ``q − flow(q)``; the border pixels extend outwards. ``mode``: bilinear, bicubic, nearest."""
    sample_grid = flow_to_grid(flow)
    if sample_grid.shape[0] != image.shape[0]:
        sample_grid = sample_grid.expand(image.shape[0], -1, -1, -1)
    out = F.grid_sample(image, sample_grid.to(image.dtype), mode=mode, padding_mode="border", align_corners=False)
    return out.clamp(0, 1) if mode == "bicubic" else out


def tps_warp(
    image: torch.Tensor,
    points: torch.Tensor,
    theta: torch.Tensor,
    border: int = BORDER_PER_SIDE,
    grid: int | None = COARSE_GRID,
    mode: str = "bilinear",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp ``image`` ``(B, C, H, W)`` so that the content at ``points`` ``(N, 2)`` (x, y pixels) moves to
    ``points + theta``; the image border stays fixed.

    Returns ``(warped (B, C, H, W), flow (1, 2, H, W))``, the flow in pixels as in the module docstring.
    Differentiable with respect to ``image`` and ``theta``.
    """
    if image.ndim != 4:
        raise SemstyleError(f"tps_warp: expected a (B, C, H, W) image, got shape {tuple(image.shape)}")
    flow = tps_flow(points, theta, tuple(image.shape[-2:]), border, grid)
    return warp_image(image, flow, mode), flow
