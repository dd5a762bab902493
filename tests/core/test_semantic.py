"""Semantic maps: palettes of the real (noisy) doodle maps, matching, masks, errors, automatic maps."""

import numpy as np
import pytest
import torch
from conftest import SHARED, needs_shared
from PIL import Image

from semstyle.core import semantic
from semstyle.errors import ConfigError, ImageError

DOODLE = SHARED / "doodle"


def _rgb(palette):
    return {tuple(int(round(v * 255)) for v in c) for c in palette.tolist()}


def _same_colours(found, expected, tol=3):
    """Every expected colour has exactly one found colour within ``tol`` per channel, and vice versa."""
    assert len(found) == len(expected), (found, expected)
    for e in expected:
        assert sum(all(abs(a - b) <= tol for a, b in zip(f, e)) for f in found) == 1, (e, found)


MONET = {(255, 255, 255), (255, 51, 31), (0, 0, 255), (0, 255, 0), (192, 0, 0)}
RENOIR = {(0, 255, 0), (255, 255, 255), (0, 0, 255), (255, 51, 31)}
# STROTSS utils.extract_regions keeps these colours (MANIFEST.md), with their exact-match pixel counts in target_sem.jpg
BOUQUET = {
    (45, 98, 166): 1614,
    (153, 45, 165): 13487,
    (165, 45, 46): 16486,
    (165, 139, 44): 11200,
    (255, 255, 255): 108022,
}


@needs_shared
@pytest.mark.parametrize("name,expected", [("monet", MONET), ("renoir", RENOIR)])
def test_palette_finds_the_classes_of_the_neural_doodle_maps(name, expected):
    for file in ("style_sem.png", "target_sem.png"):
        _same_colours(_rgb(semantic.extract_palette(semantic.load_map(DOODLE / name / file))), expected)


@needs_shared
def test_palette_of_lossy_jpeg_maps_gives_the_five_strotss_regions():
    style = semantic.load_map(DOODLE / "strotss_bouquet/style_sem.jpg")
    target = semantic.load_map(DOODLE / "strotss_bouquet/target_sem.jpg", what="target map")
    _same_colours(_rgb(semantic.extract_palette(style)), set(BOUQUET))
    style_masks, target_masks, palette = semantic.semantic_masks(style, target)
    assert style_masks.shape == (1, 5, 1600, 1200) and target_masks.shape == (1, 5, 321, 481)
    assert torch.equal(target_masks.sum(1), torch.ones(1, 321, 481))  # one-hot, nothing unassigned
    counts = target_masks.sum((0, 2, 3))
    for colour, exact in BOUQUET.items():
        k = min(range(5), key=lambda i: sum(abs(a - b) for a, b in zip(_rgb(palette[i : i + 1]).pop(), colour)))
        # nearest-colour assignment adds the JPEG-noisy pixels around each region to its exact-match core
        assert exact <= counts[k] <= 1.2 * exact, (colour, exact, counts[k])


def _blocks(colours, shape=(12, 12), noise=0.0, seed=0):
    """A map with vertical bands of ``colours`` (0-255), optional uniform noise in 0-255 units."""
    h, w = shape
    arr = np.zeros((h, w, 3), np.float32)
    for i, c in enumerate(colours):
        arr[:, i * w // len(colours) : (i + 1) * w // len(colours)] = c
    arr += np.random.default_rng(seed).uniform(-noise, noise, arr.shape)
    return torch.from_numpy(np.clip(arr, 0, 255) / 255).permute(2, 0, 1)[None].float()


def test_small_clusters_are_dropped_and_near_duplicates_merged():
    m = _blocks([(255, 0, 0), (0, 0, 255)], (40, 40), noise=6)
    m[..., :3, :2] = torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1)  # 6 green px = 0.4 % < 0.5 %
    palette = semantic.extract_palette(m)
    _same_colours(_rgb(palette), {(255, 0, 0), (0, 0, 255)}, tol=8)
    assert len(semantic.extract_palette(m, min_fraction=0.0)) == 3  # the green dot counts when allowed


def test_match_palettes_nearest_and_unmatched():
    style = torch.tensor([[1.0, 0, 0], [0, 0, 1], [1, 1, 1]])
    shifted = torch.tensor([[0.97, 0.05, 0.02], [0.99, 0.99, 0.95], [0.02, 0.0, 0.9]])
    assert semantic.match_palettes(shifted, style).tolist() == [0, 2, 1]
    odd = torch.tensor([[1.0, 0, 0], [0, 1, 0]])
    target_map = _blocks([(255, 0, 0), (0, 255, 0)], (10, 20))
    with pytest.raises(ConfigError, match=r"colour \(0, 255, 0\) .*x=10\.\.19.*semantic.unmatched=ignore"):
        semantic.match_palettes(odd, style, target_map=target_map)
    with pytest.warns(UserWarning, match=r"\(0, 255, 0\)"):
        assert semantic.match_palettes(odd, style, unmatched="ignore").tolist() == [0, -1]
    # a painted 30x20 patch and one stray pixel of its colour far away: the box is the patch's
    painted = torch.zeros(1, 3, 100, 120)
    painted[:, 0] = 1.0
    painted[0, :, 40:60, 50:80] = torch.tensor([0.0, 1.0, 0.0])[:, None, None]
    painted[0, :, 99, 0] = torch.tensor([0.0, 1.0, 0.0])
    with pytest.raises(
        ConfigError, match=r"colour \(0, 255, 0\) \(5\.0% of the pixels, mostly within x=50\.\.79, y=40\.\.59\)"
    ):
        semantic.match_palettes(odd, style, target_map=painted)


def test_the_box_of_a_colour_is_found_over_more_pixels_than_torch_quantile_takes():
    xs = torch.arange(4096).repeat(4097)  # the columns of a 4096x4097 patch: more than the 2^24 torch.quantile takes
    assert semantic._nearest_rank(xs, (0.0, 0.002, 0.998, 1.0)) == [0, 8, 4087, 4095]
    small = torch.tensor([7, 3, 9, 1, 5])
    assert semantic._nearest_rank(small, (0.0, 0.5, 1.0)) == [1, 5, 9]


def test_semantic_masks_share_channel_order_and_ignore_unmatched_pixels():
    style = _blocks([(255, 0, 0), (0, 0, 255), (255, 255, 255)], (12, 12))
    target = _blocks([(250, 250, 245), (0, 10, 250), (0, 255, 0)], (6, 9))  # shifted colours + an unknown one
    with pytest.raises(ConfigError, match=r"\(0, 255, 0\)"):
        semantic.semantic_masks(style, target, min_fraction=0.0)
    with pytest.warns(UserWarning):
        s, t, palette = semantic.semantic_masks(style, target, min_fraction=0.0, unmatched="ignore")
    assert s.shape == (1, 3, 12, 12) and t.shape == (1, 3, 6, 9)
    white = [i for i, c in enumerate(_rgb(palette[k : k + 1]).pop() for k in range(3)) if c == (255, 255, 255)][0]
    assert t[0, white, :, :3].eq(1).all() and s[0, white, :, 8:].eq(1).all()  # same region, same channel
    assert t[0, :, :, 6:].sum() == 0  # the unmatched green band has no channel


def test_masks_at_pools_by_area():
    masks = semantic.map_to_masks(_blocks([(255, 0, 0), (0, 0, 255)], (8, 8)), torch.tensor([[1.0, 0, 0], [0, 0, 1]]))
    small = semantic.masks_at(masks, (4, 3))
    assert small.shape == (1, 2, 4, 3)
    assert torch.allclose(small.sum(1), torch.ones(1, 4, 3))
    assert 0 < small[0, 0, 0, 1] < 1  # a border cell is shared, as VGG's receptive fields are


def test_load_map_rejects_grey_and_transparent_maps(tmp_path):
    Image.new("L", (8, 8), 128).save(tmp_path / "grey.png")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 120
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(tmp_path / "opaque.png")
    with pytest.raises(ImageError, match=r"grey.png: is a greyscale image") as e:
        semantic.load_map(tmp_path / "grey.png", what="target map")
    assert str(e.value).startswith("target map") and "\n" not in str(e.value)
    with pytest.raises(ImageError, match=r"rgba.png: has transparent pixels"):
        semantic.load_map(tmp_path / "rgba.png")
    with pytest.raises(ImageError, match=r"missing.png: file not found"):
        semantic.load_map(tmp_path / "missing.png")
    assert semantic.load_map(tmp_path / "opaque.png", size=4).shape == (1, 3, 4, 4)


def test_check_map_size_names_both_and_offers_resize():
    with pytest.raises(ImageError, match=r"style map a.png is 12x12 but the style image is 20x10.*--resize-maps"):
        semantic.check_map_size(
            torch.zeros(1, 3, 12, 12), torch.zeros(1, 3, 10, 20), "style map a.png", "the style image"
        )
    assert semantic.check_map_size(torch.zeros(1, 3, 12, 12), torch.zeros(1, 3, 10, 20), "m", "i", True).shape == (
        1,
        3,
        10,
        20,
    )


def test_auto_maps_label_the_same_colours_alike_across_images():
    a = _blocks([(200, 30, 30), (30, 30, 200), (30, 200, 30)], (24, 36), noise=10, seed=1)
    b = _blocks([(30, 200, 30), (200, 30, 30), (30, 30, 200)], (24, 36), noise=10, seed=2)
    ma, mb = semantic.auto_maps([a, b], 3, "color", position_weight=0.0)
    assert ma.shape == (1, 3, 24, 36) and torch.equal(ma.sum(1), torch.ones(1, 24, 36))
    la, lb = ma.argmax(1)[0], mb.argmax(1)[0]
    for band in range(3):  # each band is one region, and a colour gets the same label in both images
        assert la[:, band * 12 : (band + 1) * 12].unique().numel() == 1
    assert la[0, 0] == lb[0, 12] and la[0, 12] == lb[0, 24] and la[0, 24] == lb[0, 0]
    assert la[0, ::12].unique().numel() == 3
    assert semantic.palette_strip(semantic.AUTO_COLORS[:3], 10, 5).shape == (1, 3, 10, 15)
