"""Hypercolumns: the image and several VGG-19 layers read at the same spatial points and concatenated.

STROTSS (Kolkin et al. 2019, Sec. 2.1) describes each location by the features of many layers upsampled bilinearly
to the image grid. Reading each layer bilinearly at the sampled points (:func:`torch.nn.functional.grid_sample`,
``align_corners=False``) gives the same vectors without building the full-resolution stack.

Layer mapping. The reference code (nkolkin13/STROTSS ``vgg_pt.py``, torchvision VGG-16 ``features`` indexes
1, 3, 6, 8, 11, 13, 15, 22, 29) reads relu1_1, relu1_2, relu2_1, relu2_2, relu3_1, relu3_2, relu3_3, relu4_3 and
relu5_3 of VGG-16, plus the RGB image. VGG-19 has the same blocks with one more conv in blocks 3-5. We keep the
same names, which are also the VGG-19 layers of the closest depth (receptive field, px):

===========  ==============  ==============
layer        VGG-16 RF       VGG-19 RF
===========  ==============  ==============
relu1_1..2   3, 5            3, 5 (same)
relu2_1..2   10, 14          10, 14 (same)
relu3_1..3   24, 32, 40      24, 32, 40 (same)
relu4_3      92              100 (relu4_4: 116)
relu5_3      196             220 (relu5_4: 252)
===========  ==============  ==============

Channels: 3 + 64·2 + 128·2 + 256·3 + 512·2 = 2179, as in the reference.

Units. The encoder is the Caffe VGG: its input is ``255 · (RGB − ImageNet mean)`` (BGR), so its activations are
~255x those of the network the STROTSS paper's results and weights (α = 16, moment weight 1) were obtained with,
whose input was ``RGB − 0.5`` (reference ``utils.load_path_for_pytorch``: ``x/255 − 0.5``, no std division).
:data:`FEATURE_SCALE` divides them back, so the scale-dependent moment term keeps the paper's balance against the
scale-free cosine terms. (The reference's 2020 correction, futscdav/strotss, feeds ImageNet-normalised input,
i.e. Caffe/58 units, without retuning the weights: the moment term is then ~20x larger, and with the Caffe VGG-19
it overwhelms the content at α = 16, the output copying the style painting; see docs/strotss.md.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import check

# Caffe VGG activations -> the paper-era reference's units (input RGB − 0.5 instead of 255 · (RGB − mean)).
FEATURE_SCALE = 1.0 / 255.0


def pixel_points(mask: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Up to ``n`` distinct random pixel centres inside ``mask``, as ``grid_sample`` coordinates.

    Args:
        mask: ``(H, W)`` bool: where points may fall.
        n: how many; all the mask's pixels (shuffled) when it has fewer.
    Returns ``(N, 2)`` float ``(x, y)`` in ``[-1, 1]`` (``align_corners=False``: pixel ``j`` of ``W`` sits at
    ``(2j + 1) / W − 1``), on ``mask``'s device.
    """
    check(mask.ndim == 2, f"a sampling mask must be (H, W), got shape {tuple(mask.shape)}")
    h, w = mask.shape
    index = mask.reshape(-1).nonzero().squeeze(1)
    if index.numel() > n:
        pick = torch.randperm(index.numel(), generator=generator)[:n].to(index.device)
        index = index[pick]
    else:
        index = index[torch.randperm(index.numel(), generator=generator).to(index.device)]
    y, x = index // w, index % w
    return torch.stack([(2 * x + 1) / w - 1, (2 * y + 1) / h - 1], dim=1).float()


def sample_hypercolumns(
    features: dict[str, torch.Tensor],
    layers,
    points: torch.Tensor,
    image: torch.Tensor | None = None,
    feature_scale: float = FEATURE_SCALE,
) -> torch.Tensor:
    """Hypercolumns at ``points``: ``[image RGB (if given), layer_1, ..., layer_L]`` concatenated per point.

    Args:
        features: encoder output ``{layer: (B, C_l, h_l, w_l)}`` (any stride: each is read bilinearly).
        layers: which layers, in order.
        points: ``(N, 2)`` ``(x, y)`` in ``[-1, 1]`` from :func:`pixel_points`.
        image: ``(B, 3, H, W)`` RGB in [0, 1], prepended unscaled (the colour term reads these 3 channels).
        feature_scale: multiplies the layer features (see :data:`FEATURE_SCALE`).
    Returns ``(B, N, C)`` with ``C = 3·[image given] + Σ C_l``; differentiable w.r.t. the features and the image.
    """
    maps = [features[layer] for layer in layers]
    batch = maps[0].shape[0]
    grid = points.to(maps[0].device).view(1, 1, -1, 2).expand(batch, 1, -1, 2)

    def read(fmap: torch.Tensor) -> torch.Tensor:  # one call per map, not per point: (B, C, 1, N)
        return F.grid_sample(fmap.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)

    columns = torch.cat([read(fmap) for fmap in maps], dim=1) * feature_scale
    if image is not None:
        columns = torch.cat([read(image), columns], dim=1)
    return columns.squeeze(2).transpose(1, 2)
