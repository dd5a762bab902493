"""Colour preservation for style transfer (Gatys, Bethge, Hertzmann & Shechtman 2016, "Preserving Color in Neural
Artistic Style Transfer", arXiv:1606.05897).

Two methods:

- **luminance-only transfer**: transfer on the luminance channel ``Y`` of YUV (kornia's BT.470 conversion), with the
  style luminance first matched to the content's mean and standard deviation, then recombine the result's ``Y``
  with the content's chroma ``U, V`` (:func:`luminance`, :func:`match_luminance`, :func:`combine_luminance`);
- **colour histogram matching**: a linear map ``x' = A x + b`` of the style image's RGB so that its mean and
  covariance equal the content's, applied before the transfer (:func:`match_color`). ``A`` is either
  ``Σ_c^{1/2} Σ_s^{-1/2}`` (symmetric matrix square roots, as in Image Analogies; the paper's eq. 7) or
  ``L_c L_s^{-1}`` (Cholesky factors ``Σ = L Lᵀ``). Both satisfy ``A Σ_s Aᵀ = Σ_c``; the square-root map is the one
  closest to the identity, the Cholesky map depends on the channel order and can rotate hues more.

Images are ``(B, 3, H, W)`` RGB tensors in [0, 1]; luminance images are ``(B, 1, H, W)``.
"""

from __future__ import annotations

import torch

from ..errors import check

PRESERVE_MODES = ("none", "luminance", "histogram")
HISTOGRAM_METHODS = ("sqrt", "cholesky")

# Regulariser of the colour covariances: keeps a flat (single-colour) image invertible while moving any
# covariance entry by far less than the 1e-3 the matching is checked to.
_COV_EPS = 1e-5


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Luma ``Y = 0.299 R + 0.587 G + 0.114 B`` of ``(B, 3, H, W)``, as ``(B, 1, H, W)``."""
    from kornia.color import rgb_to_yuv  # here, not at the top: importing kornia is 0.3 s of every process's start-up

    return rgb_to_yuv(image)[:, :1]


def match_luminance(style_y: torch.Tensor, content_y: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Gatys et al. 2016 (colour), eq. 1: ``L_s' = σ_c/σ_s (L_s − μ_s) + μ_c`` over each image's pixels.

    ``style_y`` is ``(B, 1, H, W)``, ``content_y`` ``(B', 1, H', W')`` (any size). Not clamped.
    """
    mu_s, sd_s = style_y.mean(dim=(-2, -1), keepdim=True), style_y.std(dim=(-2, -1), keepdim=True)
    mu_c, sd_c = content_y.mean(dim=(-2, -1), keepdim=True), content_y.std(dim=(-2, -1), keepdim=True)
    return (style_y - mu_s) * (sd_c / (sd_s + eps)) + mu_c


def combine_luminance(y: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """RGB image with luminance ``y`` ``(B, 1, H, W)`` and the chroma ``U, V`` of ``content`` ``(B, 3, H, W)``.

    ``y`` is first clamped, per pixel, to the range in which that chroma stays inside the RGB cube, so the result
    is in [0, 1] *and* has exactly the content's chroma (clamping RGB afterwards would shift hues). The range is
    never empty: the content's own pixel lies in it.
    """
    from kornia.color import rgb_to_yuv, yuv_to_rgb  # here, not at the top: see luminance

    uv = rgb_to_yuv(content)[:, 1:]
    # yuv_to_rgb is linear and maps (1, 0, 0) to (1, 1, 1): RGB = Y + offset(U, V), the same Y for all channels.
    offset = yuv_to_rgb(torch.cat([torch.zeros_like(uv[:, :1]), uv], dim=1))
    lo = (-offset).amax(dim=1, keepdim=True)
    hi = (1 - offset).amin(dim=1, keepdim=True)
    y = torch.maximum(torch.minimum(y, hi), lo)
    return y + offset


def _mean_cov(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image colour mean ``(B, 3, 1)`` and covariance ``(B, 3, 3)`` over the pixels, in float64."""
    pixels = image.reshape(image.shape[0], 3, -1).double()
    mean = pixels.mean(dim=-1, keepdim=True)
    centred = pixels - mean
    cov = centred @ centred.transpose(1, 2) / pixels.shape[-1]
    return mean, cov + _COV_EPS * torch.eye(3, dtype=cov.dtype, device=cov.device)


def _sym_power(cov: torch.Tensor, power: float) -> torch.Tensor:
    """``cov^power`` of symmetric positive definite ``(B, 3, 3)`` by eigendecomposition."""
    values, vectors = torch.linalg.eigh(cov)
    return vectors @ torch.diag_embed(values.clamp_min(_COV_EPS).pow(power)) @ vectors.transpose(1, 2)


def color_transform(
    style: torch.Tensor, content: torch.Tensor, method: str = "sqrt"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, b)`` with ``A`` ``(B, 3, 3)`` and ``b`` ``(B, 3, 1)`` mapping the style's colour statistics onto the
    content's: ``A Σ_s Aᵀ = Σ_c``, ``A μ_s + b = μ_c`` (Gatys et al. 2016, colour, Sec. 2.2)."""
    check(
        method in HISTOGRAM_METHODS, f"color.histogram_method: {method!r} is not one of {', '.join(HISTOGRAM_METHODS)}"
    )
    mu_s, cov_s = _mean_cov(style)
    mu_c, cov_c = _mean_cov(content)
    if method == "sqrt":
        a = _sym_power(cov_c, 0.5) @ _sym_power(cov_s, -0.5)
    else:
        l_c, l_s = torch.linalg.cholesky(cov_c), torch.linalg.cholesky(cov_s)
        a = l_c @ torch.linalg.solve_triangular(
            l_s, torch.eye(3, dtype=l_s.dtype, device=l_s.device).expand_as(l_s), upper=False
        )
    return a, mu_c - a @ mu_s


def match_color(style: torch.Tensor, content: torch.Tensor, method: str = "sqrt") -> torch.Tensor:
    """The style image ``(B, 3, H, W)`` with its colours' mean and covariance set to those of ``content``
    ``(B, 3, H', W')`` (any size). Not clamped, so the statistics match exactly; clamp before display."""
    a, b = color_transform(style, content, method)
    pixels = style.reshape(style.shape[0], 3, -1).double()
    return (a @ pixels + b).reshape(style.shape).to(style.dtype)
