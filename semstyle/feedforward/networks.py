"""Feed-forward stylisation networks: the Multimodal hierarchy (Wang, Oxholm, Zhang & Wang, CVPR 2017, Sec. 3) and
the single-scale baseline of Johnson, Alahi & Fei-Fei (ECCV 2016) with Ulyanov, Vedaldi & Lempitsky's instance
normalisation (2016), both built from the same three blocks.

Blocks:

- :class:`ConvBlock`: reflection padding, convolution, instance norm, ReLU (every non-residual convolution);
- :class:`ResidualBlock`: two 3×3 convolutions with instance norm, ReLU between, plus the input (Johnson's
  supplementary material, Table 1; the skip keeps the block near identity at the start of training);
- :class:`ResizeConv`: nearest-neighbour ×2 upsampling then a :class:`ConvBlock`. Odena, Dumoulin & Olah (Distill
  2016) show that transposed convolutions leave checkerboard artefacts; no ``ConvTranspose`` is used anywhere.

Every network maps RGB in [0, 1] ``(B, 3, H, W)`` to RGB in [0, 1] of the same size (a sigmoid keeps the range).
Any ``H, W`` works: the input is reflection-padded to a multiple of the network's total stride and the output
cropped back.

>>> import torch
>>> net = StyleSubnet(width=4)
>>> net(torch.rand(1, 3, 37, 29)).shape
torch.Size([1, 3, 37, 29])
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..conf.sizes import target_size
from ..core.color import luminance


class InstanceNorm(nn.GroupNorm):
    """Instance normalisation with a learned scale and shift per channel (Ulyanov, Vedaldi & Lempitsky 2016),
    ``(B, C, H, W)`` -> same.

    GroupNorm with one channel per group is the same function with the same parameters (``weight``, ``bias``) as
    ``nn.InstanceNorm2d(C, affine=True)``, but PyTorch's CPU group norm works in channels-last memory, where
    instance norm copies to channels-first and back: the whole Multimodal network at 512 px ran ~2x faster in fp32
    (one process, interleaved repeats, shared EPYC; outputs equal within 5e-5).
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__(channels, channels, eps=eps)


def reflection_pad(x: torch.Tensor, pad: int, gather: bool | None = None) -> torch.Tensor:
    """``F.pad(x, (pad,) * 4, mode="reflect")``, ``(B, C, H, W)`` -> ``(B, C, H + 2·pad, W + 2·pad)``.

    ``gather`` (default: on CUDA) builds it from two ``index_select`` calls instead: CUDA's reflection-pad backward
    adds with atomics in a varying order, and ``index_select``'s backward is deterministic under
    ``torch.use_deterministic_algorithms`` (:func:`semstyle.core.encoder.deterministic_cuda`), so that a training
    run resumes to the bit on a GPU as on the CPU. Same values either way.

    >>> x = torch.rand(1, 2, 5, 4)
    >>> torch.equal(reflection_pad(x, 2, gather=True), reflection_pad(x, 2, gather=False))
    True
    """
    if not (x.is_cuda if gather is None else gather):
        return F.pad(x, (pad,) * 4, mode="reflect")
    h, w = x.shape[-2:]
    return x.index_select(-2, _reflected(h, pad, x.device)).index_select(-1, _reflected(w, pad, x.device))


def _reflected(n: int, pad: int, device) -> torch.Tensor:
    """Source indices of a reflection-padded axis of length ``n``: ``pad, ..., 1, 0, 1, ..., n-1, n-2, ...``."""
    i = torch.arange(-pad, n + pad, device=device).abs()
    return torch.where(i >= n, 2 * (n - 1) - i, i)


class ReflectionPad(nn.Module):
    """:func:`reflection_pad` as a layer (``nn.ReflectionPad2d``'s function; no weights, so model files are alike)."""

    def __init__(self, pad: int):
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return reflection_pad(x, self.pad)


class ConvBlock(nn.Sequential):
    """Reflection pad, ``k×k`` convolution (stride ``stride``), instance norm (affine), ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__(
            ReflectionPad(kernel // 2),
            nn.Conv2d(cin, cout, kernel, stride),
            InstanceNorm(cout),
            nn.ReLU(inplace=True),
        )


class ResidualBlock(nn.Module):
    """``x + IN(conv(ReLU(IN(conv(x)))))`` with 3×3 convolutions, ``(B, C, H, W)`` -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            ReflectionPad(1),
            nn.Conv2d(channels, channels, 3),
            InstanceNorm(channels),
            nn.ReLU(inplace=True),
            ReflectionPad(1),
            nn.Conv2d(channels, channels, 3),
            InstanceNorm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResizeConv(nn.Module):
    """Resize-convolution: nearest ×2 upsampling, then a 3×3 :class:`ConvBlock` (Odena et al. 2016)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = ConvBlock(cin, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class OutputConv(nn.Sequential):
    """The final convolution: no normalisation; a sigmoid maps to [0, 1] (Johnson et al. use a scaled tanh)."""

    def __init__(self, cin: int, kernel: int = 3):
        super().__init__(ReflectionPad(kernel // 2), nn.Conv2d(cin, 3, kernel), nn.Sigmoid())


def _encoder(cin: int, width: int, downs: int, first_kernel: int = 9, cap: int = 4) -> list[nn.Module]:
    """A ``first_kernel`` convolution to ``width`` channels, then ``downs`` stride-2 3×3 convolutions doubling them
    up to ``cap × width``."""
    layers = [ConvBlock(cin, width, first_kernel)]
    for i in range(downs):
        layers.append(ConvBlock(width * min(2**i, cap), width * min(2 ** (i + 1), cap), 3, stride=2))
    return layers


def _decoder(channels: int, ups: int, residuals: int, floor: int = 1) -> list[nn.Module]:
    """``residuals`` residual blocks, then ``ups`` resize-convolutions halving the channels down to ``floor``."""
    layers: list[nn.Module] = [ResidualBlock(channels) for _ in range(residuals)]
    for _ in range(ups):
        layers.append(ResizeConv(channels, max(channels // 2, floor)))
        channels = max(channels // 2, floor)
    return layers


class _Padded(nn.Module):
    """Pads the input to a multiple of ``stride`` (reflection; replication where the input is smaller than the pad)
    and crops the output back to the input's size."""

    stride = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # a multiple of the stride, and at least 2 px at the bottom: instance norm needs more than one pixel
        ph = max(h + (-h) % self.stride, 2 * self.stride) - h
        pw = max(w + (-w) % self.stride, 2 * self.stride) - w
        if ph or pw:
            # reflection needs pad < size; replicate covers tiny inputs (a few px) as well
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return self.body(x)[..., :h, :w]

    def body(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class StyleSubnet(_Padded):
    """Wang et al. 2017, Sec. 3.1, Fig. 2: an RGB block and a luminance block, each a 9×9 and two stride-2 3×3
    convolutions and three residual blocks; their outputs concatenated into a conv block of three residual blocks,
    two resize-convolutions and a final 3×3 convolution. ``(B, 3, H, W)`` -> ``(B, 3, H, W)``.

    ``width`` is the first convolution's channel count (the paper: 32, doubling at each downsampling).
    """

    stride = 4

    def __init__(self, width: int = 32, residuals: int = 3):
        super().__init__()
        self.rgb = nn.Sequential(*_encoder(3, width, 2), *[ResidualBlock(width * 4) for _ in range(residuals)])
        self.lum = nn.Sequential(*_encoder(1, width, 2), *[ResidualBlock(width * 4) for _ in range(residuals)])
        self.conv = nn.Sequential(*_decoder(width * 8, 2, residuals), OutputConv(width * 2))

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.rgb(x), self.lum(luminance(x))], dim=1))


class EnhanceSubnet(_Padded):
    """Wang et al. 2017, Sec. 3.1: a further stride-2 convolution before, and a resize-convolution after, the
    style-subnet structure (RGB only), so the 2× larger input costs about what the style subnet does.
    ``(B, 3, H, W)`` -> ``(B, 3, H, W)``."""

    stride = 8

    def __init__(self, width: int = 32, residuals: int = 3):
        super().__init__()
        # channels stop doubling at 4 × width (the style subnet's deepest RGB features): at 8 × width the six
        # residual blocks alone held 7 M parameters at width 32, a 30 MB fp16 file for the whole hierarchy
        self.net = nn.Sequential(
            *_encoder(3, width, 3),
            *_decoder(width * 4, 3, 2 * residuals, floor=width),  # the RGB block's and the conv block's residuals
            OutputConv(width),
        )

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class RefineSubnet(_Padded):
    """Wang et al. 2017, Sec. 3.1: three convolutions (3×3, two with stride 2), three residual blocks, two
    resize-convolutions and a final convolution. ``(B, 3, H, W)`` -> ``(B, 3, H, W)``."""

    stride = 4

    def __init__(self, width: int = 32, residuals: int = 3):
        super().__init__()
        self.net = nn.Sequential(*_encoder(3, width, 2, first_kernel=3), *_decoder(width * 4, 2, residuals))
        self.out = OutputConv(width)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(x))


class JohnsonNet(_Padded):
    """Johnson et al. 2016 (supplementary Table 1) with instance norm (Ulyanov et al. 2016): a 9×9 and two stride-2
    3×3 convolutions, five residual blocks, two resize-convolutions (in place of the paper's fractionally strided
    convolutions) and a final 9×9 convolution. ``(B, 3, H, W)`` -> ``(B, 3, H, W)``."""

    stride = 4

    def __init__(self, width: int = 32, residuals: int = 5):
        super().__init__()
        self.net = nn.Sequential(*_encoder(3, width, 2), *_decoder(width * 4, 2, residuals))
        self.out = OutputConv(width, kernel=9)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(x))


def _upsample(image: torch.Tensor, size: tuple[int, int], by_matrices: bool | None = None) -> torch.Tensor:
    """Antialiased bilinear resize between subnets (Wang et al. 2017, Sec. 3.1; bicubic could overshoot [0, 1]),
    ``(B, C, H, W)`` -> ``(B, C, *size)``, in fp32: antialiased resampling has no bf16 kernel on the CPU (the next
    convolution autocasts again).

    ``by_matrices`` (default: on CUDA) applies the same separable filter as two matrix products, ``R_h · x · R_wᵀ``:
    CUDA's backward of the resampling adds with atomics in a varying order (no deterministic kernel), a product's
    does not, so a training run resumes to the bit on a GPU. Equal within rounding:

    >>> x = torch.rand(2, 3, 5, 7)
    >>> bool((_upsample(x, (9, 13), True) - _upsample(x, (9, 13), False)).abs().max() < 1e-6)
    True
    """
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    image = image.float()
    if not (image.is_cuda if by_matrices is None else by_matrices):
        return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
    rows, cols = (_resampling_matrix(n, m, image.device) for n, m in zip(image.shape[-2:], size))
    with torch.autocast(image.device.type, enabled=False):  # fp32, as F.interpolate stays under autocast
        return rows @ image @ cols.T


@functools.lru_cache(maxsize=16)
def _resampling_matrix(n: int, m: int, device: torch.device) -> torch.Tensor:
    """``(m, n)``: row ``i`` holds the weights of the ``n`` input samples in output sample ``i`` of the antialiased
    bilinear resize from ``n`` to ``m`` (the resize of each unit vector, read off ``F.interpolate``). Kept per
    size and device: a training run resizes between the same sizes at every step."""
    unit = torch.eye(n, device=device).view(n, 1, 1, n)
    return F.interpolate(unit, size=(1, m), mode="bilinear", align_corners=False, antialias=True).view(n, m).T


class FeedForward(nn.Module):
    """A stylisation network with its output scales: ``forward(x, size)`` returns one image per scale.

    ``arch="multimodal"``: the hierarchy of Wang et al. 2017 with ``len(scales)`` of 1 to 3 stages (style, enhance,
    refine). Stage 1 sees the input resized to the first scale's long side; each later stage sees the previous
    output upsampled (bilinear) to its own scale. ``arch="johnson"``: one stage at one scale.

    ``scales`` are the training long sides (e.g. ``(128, 256, 512)`` on a CPU, the paper's ``(256, 512, 1024)``);
    ``size`` (default: that stage's scale) is the long side wanted from the last stage run (``stage``, default the
    last of all), and the earlier stages keep the training ratios to it. :meth:`output_stage` picks the stage for an
    output size at inference.
    """

    def __init__(self, arch: str = "multimodal", scales=(256, 512, 1024), width: int = 32):
        super().__init__()
        self.arch = arch
        self.scales = tuple(int(s) for s in scales)
        self.width = int(width)
        if arch == "johnson":
            if len(self.scales) != 1:
                raise ValueError(f"johnson: one scale, got {list(self.scales)}")
            self.stages = nn.ModuleList([JohnsonNet(width)])
        elif arch == "multimodal":
            if not 1 <= len(self.scales) <= 3:
                raise ValueError(f"multimodal: 1 to 3 scales, got {list(self.scales)}")
            subnets = [StyleSubnet, EnhanceSubnet, RefineSubnet][: len(self.scales)]
            self.stages = nn.ModuleList([net(width) for net in subnets])
        else:
            raise ValueError(f"arch: {arch!r} is not multimodal or johnson")

    def output_stage(self, size: int) -> int:
        """The stage whose output serves a long side of ``size`` px: the one trained nearest that size, by ratio (a
        tie goes to the later stage). Each stage learnt its strokes at its own training size, so at the size of an
        earlier stage that stage's output scores far better than the last stage run at a fraction of its own
        (docs/feedforward.md, *The output stage*: 256 px with the CPU model, ratio to 50 L-BFGS Gatys steps 3.52 /
        3.24 from the refine stage, 2.29 / 1.87 from the enhance stage).

        >>> FeedForward("multimodal", (128, 256, 512), 4).output_stage(256)
        1
        """
        return min(range(len(self.scales)), key=lambda k: (abs(math.log(size / self.scales[k])), -k))

    def stage_sizes(self, height: int, width: int, size: int | None = None, stage: int = -1) -> list[tuple[int, int]]:
        """``(H, W)`` of the outputs of stages ``0 … stage`` for an ``height × width`` input whose output at
        ``stage`` has long side ``size``."""
        last = stage % len(self.scales)
        size = self.scales[last] if size is None else int(size)
        sides = [max(8, round(size * s / self.scales[last])) for s in self.scales[: last + 1]]
        return [target_size(height, width, side) for side in sides]

    def forward(self, x: torch.Tensor, size: int | None = None, stage: int = -1) -> list[torch.Tensor]:
        """The outputs of stages ``0 … stage``, ``(B, 3, H_k, W_k)`` each, the last at long side ``size``."""
        outputs = []
        for subnet, hw in zip(self.stages, self.stage_sizes(*x.shape[-2:], size, stage)):
            x = subnet(_upsample(x, hw))
            outputs.append(x)
        return outputs
