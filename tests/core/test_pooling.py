"""avg_pool2x2: F.avg_pool2d's values, its hand-written gradient against autograd's, in either layout."""

import pytest
import torch
import torch.nn.functional as F

from semstyle.core.pooling import avg_pool2x2

LAYOUTS = [torch.contiguous_format, torch.channels_last]
SHAPES = [(2, 3, 8, 6), (1, 4, 7, 5), (1, 2, 6, 9)]  # even, odd height and width (floor mode drops them), odd width


@pytest.mark.parametrize("layout", LAYOUTS, ids=["channels_first", "channels_last"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_values_and_gradient_match_avg_pool2d(shape, layout):
    x = torch.randn(shape, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_(True)
    out = avg_pool2x2(x)
    torch.testing.assert_close(out, F.avg_pool2d(x, 2), rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(avg_pool2x2, (x,))
    weights = torch.randn_like(out)
    grad = torch.autograd.grad((avg_pool2x2(x) * weights).sum(), x)[0]
    torch.testing.assert_close(grad, torch.autograd.grad((F.avg_pool2d(x, 2) * weights).sum(), x)[0])
    assert grad.is_contiguous(memory_format=layout)  # another layout would cost the encoder's backward a copy


def test_fp32_and_bf16_within_rounding_of_aten():
    x = torch.randn(1, 8, 34, 20)
    torch.testing.assert_close(avg_pool2x2(x), F.avg_pool2d(x, 2), rtol=1e-6, atol=1e-6)
    xb = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    assert torch.equal(avg_pool2x2(xb), F.avg_pool2d(xb, 2))  # channels-last keeps ATen's forward


def test_a_map_too_small_for_the_window_raises_as_avg_pool2d_does():
    with pytest.raises(RuntimeError, match="too small"):
        avg_pool2x2(torch.rand(1, 2, 1, 6))
    with pytest.raises(RuntimeError):
        F.avg_pool2d(torch.rand(1, 2, 1, 6), 2)
