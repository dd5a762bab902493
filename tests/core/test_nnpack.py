"""NNPACK's Winograd convolutions for the encoder (semstyle/core/nnpack.py): same function, same gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from semstyle.core import encoder as enc
from semstyle.core import nnpack
from semstyle.errors import ConfigError

needs_nnpack = pytest.mark.skipif(not nnpack.nnpack_ready(), reason="this torch build has no working NNPACK")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().norm() / b.detach().norm())


@needs_nnpack
@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (1, 5, 7, 9), (3, 16, 33, 17)])
def test_conv3x3_matches_conv2d_forward_and_input_gradient(shape):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)
    w, b = torch.randn(8, shape[1], 3, 3, generator=gen), torch.randn(8, generator=gen)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y1, y2 = nnpack.conv3x3(x1, w, b), F.conv2d(x2, w, b, padding=1)
    assert y1.shape == y2.shape
    assert rel(y1, y2) < 1e-5
    g = torch.randn(y2.shape, generator=gen)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    assert rel(x1.grad, x2.grad) < 1e-5


@needs_nnpack
def test_transformed_kernels_follow_their_weights():
    """A kernel is transformed once and kept; a weight changed in place is transformed again, the transforms go with
    their weight, and a new thread count gets its own pool with the same results."""
    gen = torch.Generator().manual_seed(1)
    x, w = torch.randn(2, 16, 12, 20, generator=gen), torch.randn(24, 16, 3, 3, generator=gen)
    first = nnpack.conv3x3(x, w, None)
    kept = nnpack._TRANSFORMS[(id(w), False)][1]
    assert nnpack.conv3x3(x, w, None).equal(first) and nnpack._TRANSFORMS[(id(w), False)][1] is kept
    w.mul_(-0.5)
    assert rel(nnpack.conv3x3(x, w, None), F.conv2d(x, w, padding=1)) < 1e-5
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = nnpack.conv3x3(x, w, None)
    finally:
        torch.set_num_threads(threads)
    assert single.equal(nnpack.conv3x3(x, w, None))
    key = (id(w), False)
    del w
    assert key not in nnpack._TRANSFORMS


@needs_nnpack
def test_conv3x3_refuses_weights_that_want_a_gradient():
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    with pytest.raises(ValueError, match="conv3x3 computes no weight gradient"):
        nnpack.conv3x3(torch.randn(1, 3, 8, 8), w, None)


@needs_nnpack
def test_relu_applied_by_nnpack_gives_the_same_bits_as_f_relu():
    """The fused ReLU (NNPACK writes max(0, ·), the backward masks by the saved output) against the separate one:
    the same features and image gradient, bit for bit, also where the encoder returns a convolution's own output
    (conv4_2, the content layer, which must stay unfused)."""
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 16, 12, 20), torch.randn(32, 16, 3, 3), torch.randn(32)
    grads = []
    for fused in (True, False):
        xi = x.clone().requires_grad_(True)
        out = nnpack.conv3x3(xi, w, b, relu=True) if fused else F.relu(nnpack.conv3x3(xi, w, b))
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads.append((out.detach(), xi.grad))
    assert (grads[0][0] == 0).any() and torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])
    image, layers = torch.rand(1, 3, 48, 64), ["conv1_2", "relu2_1", "conv4_2", "relu5_1"]
    encoder = enc.VGG19Encoder("avg", "fp32", "cpu", conv="nnpack")
    results = []
    for fuse in (True, False):
        with pytest.MonkeyPatch.context() as mp:
            if not fuse:  # the unfused forward: every ReLU by F.relu
                mp.setattr(nnpack, "conv3x3", lambda x, w, b, relu=False: _unfused(x, w, b, relu))
            xi = image.clone().requires_grad_(True)
            feats = encoder(xi, layers)
            sum(f.square().mean() for f in feats.values()).backward()
            results.append((feats, xi.grad))
    (fused, g_fused), (plain, g_plain) = results
    assert all(torch.equal(fused[k], plain[k]) for k in layers) and torch.equal(g_fused, g_plain)
    assert (fused["conv4_2"] < 0).any()  # the content layer came out before its ReLU


def _unfused(x, w, b, relu):
    out = nnpack._Conv3x3.apply(x, w, b, False)
    return F.relu(out) if relu else out


@needs_nnpack
def test_encoder_with_nnpack_gives_the_float64_features_and_gradients():
    """The bounds of core/nnpack.py's docstring, at 64x48: features to 1e-5, the image gradient to 5e-3."""
    torch.manual_seed(0)
    image = torch.rand(2, 3, 48, 64)
    layers = ["relu1_1", "relu3_1", "relu5_1"]
    reference = enc.VGG19Encoder("avg", "fp32", "cpu", conv="native", layout="channels_first").double()
    fast = enc.VGG19Encoder("avg", "fp32", "cpu", conv="nnpack")
    assert fast.conv == "nnpack" and fast.layout == "channels_first"
    results = []
    for encoder, dtype in ((reference, torch.float64), (fast, torch.float32)):
        x = image.to(dtype).requires_grad_(True)
        feats = encoder(x, layers)
        sum(f.square().mean() for f in feats.values()).backward()
        results.append(({k: v.detach().double() for k, v in feats.items()}, x.grad.double()))
    (f64, g64), (f32, g32) = results
    for layer in layers:
        assert rel(f32[layer], f64[layer]) < 1e-5, layer
    assert rel(g32, g64) < 5e-3


def test_conv_is_chosen_per_device_precision_and_layout(monkeypatch):
    monkeypatch.setattr(nnpack, "nnpack_ready", lambda: True)
    assert enc.resolve_conv("auto", "fp32", "cpu") == "nnpack"
    assert enc.resolve_conv("auto", "bf16", "cpu") == "native"
    assert enc.resolve_conv("auto", "fp32", "cuda") == "native"
    assert enc.resolve_conv("auto", "fp32", "cpu", layout="channels_last") == "native"
    assert enc.resolve_conv("native", "fp32", "cpu") == "native"
    with pytest.raises(ConfigError, match="conv: nnpack runs fp32 on the CPU only, not bf16 on cpu"):
        enc.resolve_conv("nnpack", "bf16", "cpu")
    with pytest.raises(ConfigError, match="layout: channels_last does not go with conv=nnpack"):
        enc.resolve_conv("nnpack", "fp32", "cpu", layout="channels_last")
    with pytest.raises(ConfigError, match="conv: 'winograd' is not one of auto, native, nnpack"):
        enc.resolve_conv("winograd", "fp32", "cpu")
    monkeypatch.setattr(nnpack, "nnpack_ready", lambda: False)
    assert enc.resolve_conv("auto", "fp32", "cpu") == "native"
    with pytest.raises(ConfigError, match="conv: nnpack is not available in this torch build; use conv=native"):
        enc.resolve_conv("nnpack", "fp32", "cpu")
