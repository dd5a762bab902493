"""Doodle with a content photo keeps the photo (issue 16); no border cast (mirror-padded encoder)."""

import pytest
import torch
from conftest import ASSETS, SHARED, needs_shared

from semstyle.core import padded
from semstyle.core.encoder import vgg19_encoder
from semstyle.core.image import load_image, resize
from semstyle.methods import doodle


def luminance_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of the luminance (BT.601) of two ``(1, 3, H, W)`` images."""
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    la, lb = ((x * weights).sum(1).flatten() for x in (a, b))
    la, lb = la - la.mean(), lb - lb.mean()
    return float(la @ lb / (la.norm() * lb.norm()))


def _two_bands(image: torch.Tensor, split: float) -> torch.Tensor:
    """A map of ``image``'s size: red above ``split`` (a fraction of the height), blue below."""
    band = torch.zeros_like(image)
    cut = round(image.shape[-2] * split)
    band[:, 0, :cut], band[:, 2, cut:] = 1.0, 1.0
    return band


@pytest.mark.slow
def test_content_mode_keeps_the_photo_at_the_default_weight():
    """Tübingen painted with the Shipwreck, two hand-made regions (sky above, town below), at the defaults.

    The maps carry almost no structure, so what the result keeps of the photo comes from the content term. Measured at
    this size (seeds 0-2; 64 px, 20 steps): maps-only 0.21-0.31, the old defaults (weight 10 from noise) 0.28-0.38, the
    defaults 0.91. No default was tuned on this pair (docs/doodle.md lists the pairs used).
    """
    content = load_image(ASSETS / "content/tubingen.jpg", 128)
    style = load_image(ASSETS / "styles/shipwreck.jpg", 128)
    style_map, target_map = _two_bands(style, 0.5), _two_bands(content, 0.38)
    options = dict(size=64, steps=20, phases=1, progress=False, precision="fp32", seed=1)
    maps_only = doodle.doodle(style, style_map, target_map, **options)
    with_photo = doodle.doodle(style, style_map, target_map, content=content, **options)
    photo = resize(content, tuple(with_photo.shape[-2:]))
    kept, baseline = luminance_correlation(with_photo, photo), luminance_correlation(maps_only, photo)
    assert kept > 0.8 and kept > baseline + 0.3, (kept, baseline)
    # and it is painted, not the photo handed back: the pixels moved
    assert (with_photo - photo).abs().mean() > 0.03


def _border_excess(image: torch.Tensor) -> tuple[float, float]:
    """``(edge, inside)``: over the four sides, the RGB distance (0-255) of the mean colour of the outermost line from
    that of lines 2-5, and the same statistic for every line at least 6 from the edges (the texture's own
    line-to-line variation). A border cast makes ``edge`` exceed ``inside``."""
    x = image[0].float() * 255
    edge, inside = [], []
    for side in range(4):
        lines = torch.rot90(x, side, (1, 2)).mean(1)  # (3, n): mean colour of each line, side `side` at 0

        def deviation(i):
            return float((lines[:, i] - lines[:, i + 2 : i + 6].mean(1)).norm())

        edge.append(deviation(0))
        inside += [deviation(i) for i in range(6, lines.shape[1] - 6)]
    return sum(edge) / len(edge), sum(inside) / len(inside)


@needs_shared
@pytest.mark.slow
def test_no_border_cast_on_the_monet_doodle(monkeypatch):
    """The outer line of a doodle has the colour of the lines next to it. With the plain (zero-padded) encoder it did
    not: measured at 96 px, seeds 0-2, edge / inside 1.8-2.0 with zero padding, 0.8-1.1 mirror-padded."""
    monet = SHARED / "doodle/monet"
    maps = (monet / "style.jpg", monet / "style_sem.png", monet / "target_sem.png")
    options = dict(size=96, steps=30, phases=1, progress=False, precision="fp32", seed=0)
    edge, inside = _border_excess(doodle.doodle(*maps, **options))
    assert edge < 1.3 * inside, (edge, inside)
    monkeypatch.setattr(padded, "BORDER_PAD", 0)  # the encoder as it was: the cast this test is for
    edge, inside = _border_excess(doodle.doodle(*maps, **options))
    assert edge > 1.5 * inside, (edge, inside)


def test_mirror_pad_is_symmetric_padding():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    y = padded.mirror_pad(x, 2)
    assert y.shape == (1, 1, 7, 8)
    assert y[0, 0, 2].tolist() == [1, 0, 0, 1, 2, 3, 3, 2]  # row 0: edge columns repeated
    assert y[0, 0, :, 2].tolist() == [4, 0, 0, 4, 8, 8, 4]
    assert torch.equal(y[..., 2:5, 2:6], x)
    assert padded.mirror_indices(2, 5).tolist() == [0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1]  # pad > size folds again
    big = padded.mirror_pad(x, 5)  # larger than the 3 rows: folded twice, the same as the indices say
    assert torch.equal(
        big, x.index_select(-2, padded.mirror_indices(3, 5)).index_select(-1, padded.mirror_indices(4, 5))
    )


def test_padded_encoder_keeps_sizes_and_inner_features_and_changes_only_the_edge():
    encoder = vgg19_encoder("avg", "fp32", "cpu")
    wrapped = padded.PaddedEncoder(encoder, pad=8)
    image = load_image(ASSETS / "styles/starry_night.jpg", (52, 76))  # sizes not divisible by 8: floors must agree
    layers = ["relu3_1", "relu4_1", "relu5_1"]
    plain, mirrored = encoder(image, layers), wrapped(image, layers)
    for layer in layers:
        assert mirrored[layer].shape == plain[layer].shape, layer
    # relu3_1 cells far from the edges see the same pixels either way
    # (stride 4; conv receptive fields reach ~10 cells at relu3_1, so compare the centre only)
    a, b = plain["relu3_1"][..., 5:-5, 5:-5], mirrored["relu3_1"][..., 5:-5, 5:-5]
    assert torch.allclose(a, b, rtol=1e-3, atol=1e-2 * float(a.abs().max()))
    edge = (plain["relu3_1"][..., :, 0] - mirrored["relu3_1"][..., :, 0]).abs().mean()
    assert edge > 0.05 * plain["relu3_1"].abs().mean()
    # gradients flow to the image through the mirrored copies
    x = image.clone().requires_grad_(True)
    wrapped(x, ["relu3_1"])["relu3_1"].sum().backward()
    assert x.grad is not None and x.grad[..., :, 0].abs().sum() > 0
