"""Laplacian loss (Li, Xu, Nie & Chua 2017): hand-computed values, pooling, weights, and its effect on a transfer."""

import pytest
import torch
from conftest import ASSETS

from semstyle.core.image import load_image
from semstyle.errors import ConfigError
from semstyle.losses.laplacian import LaplacianLoss, laplacian, laplacian_loss
from semstyle.methods import gatys

CONTENT, STYLE = ASSETS / "content/tubingen.jpg", ASSETS / "styles/starry_night.jpg"


def test_laplacian_of_a_point_is_the_kernel_summed_over_rgb():
    image = torch.zeros(1, 3, 5, 5)
    image[0, 0, 2, 2] = 1.0  # R
    image[0, 2, 2, 2] = 0.5  # B: channels are summed -> 1.5
    lap = laplacian(image)
    assert lap.shape == (1, 1, 3, 3)  # "valid": no padding, no border effects
    expected = 1.5 * torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])
    assert torch.allclose(lap[0, 0], expected)


def test_laplacian_after_average_pooling_by_hand():
    # 8x8 image of 2x2 blocks; pooling p=2 gives the 4x4 block means m, then the 4-neighbour Laplacian
    m = torch.tensor([[0.0, 1.0, 2.0, 3.0], [1.0, 5.0, 1.0, 0.0], [2.0, 1.0, 0.0, 4.0], [0.0, 0.0, 2.0, 1.0]])
    image = m.repeat_interleave(2, 0).repeat_interleave(2, 1)[None, None].expand(1, 3, 8, 8) / 3
    lap = laplacian(image, pool=2)[0, 0]
    # centre (1,1): 4*5 - (1 + 1 + 1 + 1) = 16; (1,2): 4*1 - (2 + 5 + 0 + 0) = -3
    # (2,1): 4*1 - (5 + 2 + 0 + 0) = -3;      (2,2): 4*0 - (1 + 1 + 4 + 2) = -8
    assert torch.allclose(lap, torch.tensor([[16.0, -3.0], [-3.0, -8.0]]), atol=1e-5)
    # the loss against a zero target is the mean square: (256 + 9 + 9 + 64) / 4
    assert torch.isclose(laplacian_loss(image, torch.zeros(1, 1, 2, 2), pool=2), torch.tensor(84.5))


def test_laplacian_of_a_linear_ramp_is_zero():
    ramp = torch.linspace(0, 1, 32)[None, None, None].expand(1, 3, 32, 32)
    assert laplacian(ramp, 4).abs().max() < 1e-5


def test_module_sums_weighted_pool_terms_and_has_gradients():
    content, other = torch.rand(1, 3, 64, 48), torch.rand(1, 3, 64, 48, requires_grad=True)
    term = LaplacianLoss(pool_sizes=[2, 8], weights=[1.0, 3.0])
    assert term.layers == ()
    term.set_target({"image": content})
    value = term({"image": other})
    expected = laplacian_loss(other, laplacian(content, 2), 2) + 3 * laplacian_loss(other, laplacian(content, 8), 8)
    assert torch.isclose(value, expected)
    value.backward()
    assert other.grad.abs().sum() > 0
    assert float(term({"image": content})) == 0.0


def test_bad_pool_settings_are_config_errors():
    with pytest.raises(ConfigError, match="pool size 16 leaves a 2x3 image"):
        laplacian(torch.rand(1, 3, 40, 50), 16)
    with pytest.raises(ConfigError, match="laplacian.pool_weights: 1 weights given for 2 pool sizes"):
        LaplacianLoss([4, 16], [1.0])
    with pytest.raises(ConfigError, match="laplacian.pool_weights: must be >= 0"):
        LaplacianLoss([4], [-1.0])


def test_laplacian_loss_keeps_the_output_closer_to_the_content_laplacian():
    content, style = load_image(CONTENT, 96), load_image(STYLE, 96)
    common = dict(size=96, steps=10, init="noise", progress=False, precision="bf16")
    plain = gatys.stylize(content, style, **common)
    steered = gatys.stylize(content, style, laplacian={"weight": 1e3, "pool_sizes": [2, 4]}, **common)

    def distance(image):
        return sum(float(laplacian_loss(image, laplacian(content, p), p)) for p in (2, 4))

    assert distance(steered) < 0.7 * distance(plain), (distance(steered), distance(plain))
