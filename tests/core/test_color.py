"""Colour preservation (Gatys, Bethge, Hertzmann & Shechtman 2016): luminance matching/recombination, histogram
(mean + covariance) matching by matrix square root and by Cholesky, and luminance-only transfer end to end."""

import pytest
import torch
from conftest import ASSETS
from kornia.color import rgb_to_yuv

from semstyle.core.color import color_transform, combine_luminance, luminance, match_color, match_luminance
from semstyle.core.image import load_image
from semstyle.errors import ConfigError
from semstyle.methods import gatys

CONTENT, STYLE = ASSETS / "content/tubingen.jpg", ASSETS / "styles/starry_night.jpg"


def _stats(image):
    pixels = image.reshape(3, -1).double()
    return pixels.mean(1), torch.cov(pixels, correction=0)


@pytest.mark.parametrize("method", ["sqrt", "cholesky"])
def test_histogram_matching_gives_the_content_mean_and_covariance(method):
    content, style = load_image(CONTENT, 96), load_image(ASSETS / "styles/monalisa.jpg", 80)  # other size & shape
    matched = match_color(style, content, method)
    assert matched.shape == style.shape
    (mu_m, cov_m), (mu_c, cov_c), (mu_s, _) = _stats(matched), _stats(content), _stats(style)
    assert (mu_m - mu_c).abs().max() < 1e-3 and (cov_m - cov_c).abs().max() < 1e-3
    assert (mu_s - mu_c).abs().max() > 0.05  # it did have to change something
    a, b = color_transform(style, content, method)
    a = a[0].float()
    if method == "sqrt":  # Σ_c^½ Σ_s^-½ is not symmetric in general, but the map is a product of two SPD roots
        assert torch.linalg.eigvals(a).real.min() > 0
    else:
        assert not torch.allclose(a, a.T)


def test_sqrt_and_cholesky_maps_differ_but_both_match():
    content, style = load_image(CONTENT, 64), load_image(STYLE, 64)
    a_sqrt, _ = color_transform(style, content, "sqrt")
    a_chol, _ = color_transform(style, content, "cholesky")
    assert (a_sqrt - a_chol).abs().max() > 1e-2


def test_flat_style_image_does_not_break_matching():
    content = load_image(CONTENT, 48)
    flat = torch.full((1, 3, 20, 30), 0.4)
    out = match_color(flat, content, "cholesky")
    assert torch.isfinite(out).all()
    assert (out.mean(dim=(2, 3)) - content.mean(dim=(2, 3))).abs().max() < 1e-3


def test_unknown_histogram_method_is_a_config_error():
    with pytest.raises(ConfigError, match="color.histogram_method: 'svd'"):
        match_color(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), "svd")


def test_luminance_matching_uses_the_content_mean_and_std():
    content_y, style_y = luminance(load_image(CONTENT, 64)), luminance(load_image(STYLE, 50))
    matched = match_luminance(style_y, content_y)
    assert matched.shape == style_y.shape == (1, 1, 31, 50)
    assert abs(float(matched.mean() - content_y.mean())) < 1e-5
    assert abs(float(matched.std() - content_y.std())) < 1e-4
    # a monotone map of the style luminance: its ordering (the structure) is kept
    assert torch.equal(matched.flatten().argsort(), style_y.flatten().argsort())


def test_combined_luminance_keeps_the_content_chroma_and_stays_in_gamut():
    content = load_image(CONTENT, 64)
    y = torch.rand(1, 1, *content.shape[-2:]) * 2 - 0.5  # far outside [0, 1] too
    out = combine_luminance(y, content)
    assert out.min() >= -1e-6 and out.max() <= 1 + 1e-6
    assert (rgb_to_yuv(out)[:, 1:] - rgb_to_yuv(content)[:, 1:]).abs().max() < 1e-5
    inside = ((y > 0.3) & (y < 0.5)).expand(-1, 1, -1, -1)
    assert (luminance(out) - y)[inside].abs().max() < 0.2  # luminance kept where the chroma allows it


def test_luminance_only_transfer_output_has_the_content_chroma():
    content, style = load_image(CONTENT, 64), load_image(STYLE, 64)
    out = gatys.stylize(
        content, style, size=64, steps=6, progress=False, precision="bf16", color={"preserve": "luminance"}
    )
    assert out.shape == content.shape and out.min() >= 0 and out.max() <= 1
    uv_out, uv_content = rgb_to_yuv(out)[:, 1:], rgb_to_yuv(content)[:, 1:]
    assert (uv_out - uv_content).abs().max() < 1e-5
    assert (luminance(out) - luminance(content)).abs().mean() > 0.01  # the luminance was stylised
