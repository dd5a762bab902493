import math

import pytest
import torch

from semstyle.errors import ConfigError
from semstyle.losses import ContentLoss, GramLoss, TVLoss, content_loss, gram_loss, gram_matrix, tv_loss


def test_gram_matrix_hand_example():
    # Two channels over 2x2 pixels: F = [[1,2,3,4],[0,1,0,1]], G = F Fᵀ / M with M = 4.
    f = torch.tensor([[1.0, 2, 3, 4], [0, 1, 0, 1]]).reshape(1, 2, 2, 2)
    expected = torch.tensor([[30.0, 6], [6, 2]]) / 4
    assert torch.allclose(gram_matrix(f)[0], expected)
    # Same result from channels_last memory.
    assert torch.allclose(gram_matrix(f.contiguous(memory_format=torch.channels_last))[0], expected)


def test_gram_loss_is_gatys_eq4():
    # E = 1/(4 N² M²) Σ (G_raw − A_raw)² with N = 2 channels, M = 4 positions.
    f = torch.tensor([[1.0, 2, 3, 4], [0, 1, 0, 1]]).reshape(1, 2, 2, 2)
    s = torch.tensor([[0.0, 1, 0, 1], [2, 2, 2, 2]]).reshape(1, 2, 2, 2)
    g_raw, a_raw = torch.tensor([[30.0, 6], [6, 2]]), torch.tensor([[2.0, 4], [4, 16]])
    expected = ((g_raw - a_raw) ** 2).sum() / (4 * 2**2 * 4**2)
    assert math.isclose(float(gram_loss(gram_matrix(f), gram_matrix(s))), float(expected), rel_tol=1e-6)
    # Size-normalised: the loss against itself tiled is zero.
    assert float(gram_loss(gram_matrix(f), gram_matrix(f.repeat(1, 1, 2, 2)))) < 1e-10


def test_content_loss_hand_example():
    a = torch.tensor([1.0, 2, 3, 4]).reshape(1, 1, 2, 2)
    b = torch.tensor([1.0, 0, 3, 8]).reshape(1, 1, 2, 2)
    assert float(content_loss(a, b)) == pytest.approx((0 + 4 + 0 + 16) / 4)


def test_tv_known_value():
    # Horizontal ramp 0, 1, 2 on 2 rows: dx = 1 everywhere, dy = 0.
    img = torch.tensor([[0.0, 1, 2], [0, 1, 2]]).reshape(1, 1, 2, 3)
    assert float(tv_loss(img, p=2)) == pytest.approx(1.0)
    assert float(tv_loss(img * 3, p=1)) == pytest.approx(3.0)
    assert float(TVLoss()({"image": torch.ones(1, 3, 4, 4)})) == 0.0


@pytest.mark.parametrize("p", [1.0, 2.0, 2.5, 3.0])
def test_tv_gradient_equals_autograd_of_the_formula(p):
    x = torch.rand(2, 3, 9, 11, dtype=torch.float64, requires_grad=True)
    x.data[0, 0, 0, :2] = 0.5  # a zero difference: |d|^p's gradient there is 0, as autograd's
    dy, dx = torch.diff(x, dim=-2), torch.diff(x, dim=-1)
    reference = dy.abs().pow(p).mean() + dx.abs().pow(p).mean()
    value = tv_loss(x, p)
    assert torch.allclose(value, reference)
    assert torch.allclose(torch.autograd.grad(value, x)[0], torch.autograd.grad(reference, x)[0])


def test_modules_cache_targets_and_weights():
    feats = {"relu1_1": torch.rand(1, 4, 6, 6), "relu2_1": torch.rand(1, 8, 3, 3)}
    style = GramLoss(["relu1_1", "relu2_1"], [2.0, 0.0])
    style.set_target(feats)
    assert float(style(feats)) == 0.0
    other = {k: v * 2 for k, v in feats.items()}
    expected = 2.0 * float(gram_loss(gram_matrix(other["relu1_1"]), gram_matrix(feats["relu1_1"])))
    assert float(style(other)) == pytest.approx(expected)
    content = ContentLoss(["relu2_1"])
    with pytest.raises(RuntimeError, match="set_target"):
        content(feats)
    with pytest.raises(ConfigError, match="layer weights"):
        GramLoss(["relu1_1"], [1.0, 2.0])
    with pytest.raises(ConfigError, match=">= 0"):
        GramLoss(["relu1_1"], [-1.0])


def test_gram_matrix_gradient_matches_finite_differences():
    x = torch.randn(2, 5, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gram_matrix, (x,))
    x_cl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    assert torch.autograd.gradcheck(gram_matrix, (x_cl,))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_gram_gradient_keeps_the_features_layout(layout):
    """A gradient in the other layout costs the encoder's backward a full copy of the feature map (80 ms at
    conv1_1, 512 px); the one-matmul backward must hand it back in the layout the features came in."""
    x = torch.randn(1, 8, 6, 5).contiguous(memory_format=layout).requires_grad_(True)
    grad = torch.autograd.grad(gram_matrix(x).square().sum(), x)[0]
    assert grad.is_contiguous(memory_format=layout)
    flat = x.detach().reshape(8, 30).requires_grad_(True)
    expected = torch.autograd.grad(((flat @ flat.T) / 30).square().sum(), flat)[0]
    torch.testing.assert_close(grad.reshape(8, 30), expected)
