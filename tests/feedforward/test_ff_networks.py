"""The feed-forward networks: output sizes for odd inputs, resize-convolutions only, instance norm after every
non-residual convolution (issue 19, tests: shapes)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from semstyle.feedforward.networks import (
    ConvBlock,
    EnhanceSubnet,
    FeedForward,
    InstanceNorm,
    JohnsonNet,
    OutputConv,
    RefineSubnet,
    ResizeConv,
    StyleSubnet,
)

ODD = [(37, 29), (33, 64), (7, 5)]


@pytest.mark.parametrize("net", [StyleSubnet, EnhanceSubnet, RefineSubnet, JohnsonNet])
def test_subnets_keep_odd_sizes(net):
    model = net(width=2)
    for h, w in ODD:
        with torch.no_grad():
            out = model(torch.rand(2, 3, h, w))
        assert out.shape == (2, 3, h, w), (net.__name__, (h, w))
        assert 0 <= float(out.min()) and float(out.max()) <= 1


@pytest.mark.parametrize(("arch", "scales"), [("multimodal", (32, 64, 128)), ("johnson", (48,))])
def test_hierarchy_output_sizes(arch, scales):
    net = FeedForward(arch, scales, width=2)
    x = torch.rand(1, 3, 45, 77)  # wide, odd
    outs = net(x)
    assert [tuple(o.shape[-2:]) for o in outs] == [(round(45 * s / 77), s) for s in scales]
    # a requested size keeps the training ratios: 1:2:4 for (32, 64, 128)
    outs = net(x, size=100)
    assert max(outs[-1].shape[-2:]) == 100
    if arch == "multimodal":
        assert [max(o.shape[-2:]) for o in outs] == [25, 50, 100]


def _all_nets():
    return [FeedForward("multimodal", (32, 64, 128), 2), FeedForward("johnson", (32,), 2)]


def test_instance_norm_matches_torch_instance_norm():
    norm, reference = InstanceNorm(6), nn.InstanceNorm2d(6, affine=True)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
        reference.load_state_dict(norm.state_dict())  # the same parameter names: models trained with either load
        x = torch.randn(2, 6, 9, 7) * 3 + 1
        torch.testing.assert_close(norm(x), reference(x), atol=1e-5, rtol=1e-5)


def test_no_transposed_convolution():
    for net in _all_nets():
        kinds = {type(m).__name__ for m in net.modules()}
        assert not any("ConvTranspose" in k for k in kinds), kinds
        assert any(isinstance(m, ResizeConv) for m in net.modules())


def test_instance_norm_after_every_non_output_convolution():
    for net in _all_nets():
        convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
        followed, outputs = 0, 0
        for parent in net.modules():
            if not isinstance(parent, nn.Sequential):
                continue
            children = list(parent)
            for i, child in enumerate(children):
                if not isinstance(child, nn.Conv2d):
                    continue
                if isinstance(parent, OutputConv):
                    outputs += 1
                    continue
                assert isinstance(children[i + 1], InstanceNorm), f"{parent}: conv {i} lacks instance norm"
                followed += 1
                if isinstance(parent, ConvBlock):  # a non-residual conv: ReLU after the norm too
                    assert isinstance(children[i + 2], nn.ReLU)
        norms = [m for m in net.modules() if isinstance(m, nn.GroupNorm)]
        assert all(isinstance(m, InstanceNorm) and m.num_groups == m.num_channels for m in norms)
        assert outputs == len(net.stages)  # one plain output convolution per stage, nothing else un-normalised
        assert followed + outputs == len(convs)
