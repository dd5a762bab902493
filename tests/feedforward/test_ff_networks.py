"""The feed-forward networks: output sizes for odd inputs, resize-convolutions only, instance norm after every
non-residual convolution (issue 19, tests: shapes)."""

from __future__ import annotations

import doctest

import pytest
import torch
from torch import nn

from semstyle.feedforward import networks
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


def test_cuda_paths_compute_the_same_pad_and_resize():
    """The reflection pad and the resize between subnets have a second form, used on CUDA where the first's
    backward is not deterministic (a run would not resume to the bit there): the same values and gradients."""
    x = torch.rand(2, 3, 9, 6, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(2, 3, 13, 10, dtype=torch.float64)
    pads = [networks.reflection_pad(x, 2, gather=g) for g in (True, False)]
    grads = [torch.autograd.grad((p * weights).sum(), x)[0] for p in pads]
    assert torch.equal(pads[0], pads[1]) and torch.allclose(grads[0], grads[1], rtol=0, atol=1e-12)
    weights = torch.rand(2, 3, 20, 11, dtype=torch.float64)
    ups = [networks._upsample(x, (20, 11), by_matrices=m).double() for m in (True, False)]
    grads = [torch.autograd.grad((u * weights).sum(), x)[0] for u in ups]
    assert (ups[0] - ups[1]).abs().max() < 1e-6 and (grads[0] - grads[1]).abs().max() < 1e-5
    assert doctest.testmod(networks).failed == 0


def test_output_stage_is_the_stage_trained_nearest_the_size():
    net = FeedForward("multimodal", (128, 256, 512), 4)
    assert [net.output_stage(s) for s in (32, 128, 180, 256, 300, 400, 512, 2048)] == [0, 0, 0, 1, 1, 2, 2, 2]
    assert FeedForward("johnson", (512,), 4).output_stage(128) == 0


def test_stages_run_up_to_one_give_its_output_at_the_asked_size():
    """Run up to the enhance stage with its output at 64 px: the first two outputs of the whole hierarchy run with
    its last output at 128 px, bit for bit (the same stage sizes), and nothing more."""
    torch.manual_seed(0)
    net = FeedForward("multimodal", (32, 64, 128), 4).eval()
    x = torch.rand(1, 3, 48, 40)
    with torch.no_grad():
        two, three = net(x, 64, stage=1), net(x, 128)
    assert len(two) == 2 and max(two[-1].shape[-2:]) == 64
    assert all(torch.equal(a, b) for a, b in zip(two, three[:2]))
