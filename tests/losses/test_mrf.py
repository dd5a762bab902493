"""Patch MRF loss against brute force; semantic guidance; masked Gram loss."""

import pytest
import torch
import torch.nn.functional as F
from conftest import ASSETS

from semstyle.losses.gram import gram_loss, gram_matrix
from semstyle.losses.gram_masked import MaskedGramLoss, masked_grams
from semstyle.losses.mrf import MRFLoss, mrf_loss
from semstyle.patches.geometry import (
    extract_patches,
    mask_rows,
    ncc_patches,
    overlay_patches,
    overlay_style_patches,
    patch_index,
    shift_patches,
)
from semstyle.patches.patchmatch import patchmatch_step, sampling_pools
from semstyle.patches.search import candidate_groups, nearest_patches, principal_channels, project_channels


def _brute_force(x, s, k, stride, style_stride, xm=None, sm=None, w=0.0):
    """NCC by explicit patch vectors: score[i, j] = <x_i, s_j>/(|x_i||s_j|) + w <m_i, n_j>/(|m_i||n_j|)."""
    xp = extract_patches(x, k, stride).flatten(1)
    sp = extract_patches(s, k, style_stride).flatten(1)
    score = F.normalize(xp, dim=1) @ F.normalize(sp, dim=1).t()
    if w:
        score = (
            score
            + w
            * F.normalize(extract_patches(xm, k, stride).flatten(1), dim=1)
            @ F.normalize(extract_patches(sm, k, style_stride).flatten(1), dim=1).t()
        )
    return score.max(dim=1)


@pytest.mark.parametrize("stride,style_stride", [(1, 1), (2, 2), (1, 2)])
def test_nearest_patches_equals_brute_force(stride, style_stride):
    gen = torch.Generator().manual_seed(stride * 10 + style_stride)
    x, s = torch.randn(1, 6, 11, 13, generator=gen), torch.randn(1, 6, 10, 9, generator=gen)
    target, _ = ncc_patches(x, 3, stride)
    style, _ = ncc_patches(s, 3, style_stride)
    for chunk in (7, 1 << 20):  # many chunks (7 scores each) or one
        index, score = nearest_patches(target, style, chunk_elements=chunk)
        ref_score, ref_index = _brute_force(x, s, 3, stride, style_stride)
        assert torch.equal(index, ref_index)
        assert torch.allclose(score, ref_score, atol=1e-5)


def test_guided_matching_equals_brute_force_and_obeys_the_map():
    gen = torch.Generator().manual_seed(3)
    x, s = torch.randn(1, 5, 9, 9, generator=gen), torch.randn(1, 5, 9, 9, generator=gen)
    xm, sm = torch.zeros(1, 2, 9, 9), torch.zeros(1, 2, 9, 9)
    xm[:, 0, :, :5], xm[:, 1, :, 5:] = 1, 1
    sm[:, 0, :5], sm[:, 1, 5:] = 1, 1
    target, norms = ncc_patches(x, 3, 1, xm, mask_scale=10.0)
    style, _ = ncc_patches(s, 3, 1, sm)
    index, score = nearest_patches(target, style, chunk_elements=13)
    ref_score, ref_index = _brute_force(x, s, 3, 1, 1, xm, sm, 10.0)
    # synthesis rows are not normalised: the score is ‖x_i‖ (NCC + w (NCC_map − 1)), the same best match
    assert torch.equal(index, ref_index) and torch.allclose(score / norms, ref_score - 10.0, atol=1e-4)
    # patches wholly inside target region 0 (columns 0..2 of the 7x7 grid) take style patches wholly inside region 0
    rows = index // 7
    inside = torch.arange(49) % 7 <= 2
    assert (rows[inside] <= 2).all()
    # unguided, the same features pick across regions
    unguided, _ = nearest_patches(ncc_patches(x, 3, 1)[0], ncc_patches(s, 3, 1)[0])
    assert (unguided // 7)[inside].max() > 2


def _region_masks(h, w, shift):
    """Three soft-edged vertical bands (anti-aliased like a resized map), the borders moved by ``shift``."""
    x = torch.arange(w).float() + shift
    bands = torch.stack([(x < w / 3).float(), ((x >= w / 3) & (x < 2 * w / 3)).float(), (x >= 2 * w / 3).float()])
    return F.avg_pool2d(bands[None, :, None].expand(1, 3, h, w), 3, 1, 1, count_include_pad=False)


@pytest.mark.parametrize("stride", [1, 2])
def test_region_restricted_search_finds_the_full_searchs_matches(stride):
    gen = torch.Generator().manual_seed(7)
    x, s = torch.randn(1, 8, 80, 84, generator=gen), torch.rand(1, 8, 76, 82, generator=gen)
    xm, sm = _region_masks(80, 84, 1.5), _region_masks(76, 82, 0)
    loss = MRFLoss(["relu3_1"], style_stride=stride, stride=stride, semantic_weight=10.0, chunk_elements=1 << 18)
    loss.set_target({"relu3_1": s}, sm)
    loss.set_input_masks(xm)
    index = loss.match("relu3_1", x)
    style = loss.style_rows["relu3_1"]
    full, _ = nearest_patches(ncc_patches(x, 3, stride, xm, mask_scale=10.0)[0], style)
    assert torch.equal(index, full)
    groups = loss._target["relu3_1", 0][3]
    searched = sum(len(m) * (len(style) if c is None else len(c)) for m, c, _ in groups)
    assert searched < 0.6 * len(index) * len(style)  # the grouping does prune
    # weak map guidance (w = 0.5: any style patch may win), no map, or a small search: no groups
    units = mask_rows(xm, 3, stride), mask_rows(sm, 3, stride)
    assert candidate_groups(*units, 3, 10.0) is not None
    assert candidate_groups(*units, 3, 0.5) is None and candidate_groups(*units, 3, 0.0) is None
    assert candidate_groups(*units, 3, 10.0, min_scores=len(index) * len(style) + 1) is None


@pytest.mark.parametrize("stride", [1, 2])
def test_mrf_loss_and_gradient_equal_the_explicit_patch_loss(stride):
    gen = torch.Generator().manual_seed(stride)
    x, matched_src = torch.randn(1, 4, 10, 9, generator=gen), torch.randn(1, 4, 10, 9, generator=gen)
    matched = extract_patches(matched_src, 3, stride)[torch.randperm(len(extract_patches(x, 3, stride)), generator=gen)]
    a = x.clone().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    loss = mrf_loss(a, matched, 3, stride)
    ref = (extract_patches(b, 3, stride) - matched).pow(2).mean()
    loss.backward()
    ref.backward()
    assert torch.allclose(loss, ref, rtol=1e-5)
    assert torch.allclose(a.grad, b.grad, atol=1e-7)


def test_mrf_loss_module_is_zero_on_the_style_itself_and_pulls_towards_it():
    gen = torch.Generator().manual_seed(0)
    s = {"relu3_1": torch.rand(1, 8, 12, 12, generator=gen)}
    loss = MRFLoss(["relu3_1"])
    loss.set_target(s)
    assert loss(s).item() == pytest.approx(0.0, abs=1e-6)
    assert torch.equal(loss.last_index["relu3_1"], torch.arange(100))  # every patch finds itself
    x = {"relu3_1": torch.rand(1, 8, 12, 12, generator=gen).requires_grad_(True)}
    before = loss(x)
    before.backward()
    with torch.no_grad():
        x["relu3_1"] -= 2.0 * x["relu3_1"].grad
    assert loss(x) < before


def test_invalid_style_area_gives_no_patches():
    s = {"relu3_1": torch.rand(1, 4, 10, 10)}
    valid = torch.ones(1, 1, 10, 10)
    valid[..., :, :4] = 0  # an empty (rotated) corner strip
    loss = MRFLoss(["relu3_1"], style_stride=1)
    loss.set_target([s], valid=[valid])
    assert len(loss.style_rows["relu3_1"]) == 8 * 4  # patch columns 4..7 only


@pytest.mark.parametrize("guided", [False, True])
def test_bf16_search_agrees_with_fp32_on_most_patches(guided):
    gen = torch.Generator().manual_seed(1)
    x, s = torch.rand(1, 64, 16, 16, generator=gen), torch.rand(1, 64, 16, 16, generator=gen)
    s[..., :8, :] *= 3  # distinct patches
    m = torch.zeros(1, 2, 16, 16)
    m[:, 0, :, :8], m[:, 1, :, 8:] = 1, 1
    masks = dict(masks=m, mask_scale=10.0) if guided else {}
    style_masks = dict(masks=m) if guided else {}
    exact = nearest_patches(ncc_patches(x, 3, 1, **masks)[0], ncc_patches(s, 3, 1, **style_masks)[0])[0]
    fast = nearest_patches(
        ncc_patches(x, 3, 1, dtype=torch.bfloat16, **masks)[0],
        ncc_patches(s, 3, 1, dtype=torch.bfloat16, **style_masks)[0],
    )[0]
    # near-ties may flip at bf16 precision; guided scores are offset by -w so they keep the same precision
    assert (fast == exact).float().mean() > 0.6


def test_masked_gram_equals_per_region_gram_loss():
    gen = torch.Generator().manual_seed(2)
    f_s, f_x = torch.rand(1, 5, 8, 8, generator=gen), torch.rand(1, 5, 8, 8, generator=gen).requires_grad_(True)
    m = torch.zeros(1, 3, 8, 8)
    m[:, 0, :4], m[:, 1, 4:] = 1, 1  # region 2 is empty
    grams, area = masked_grams(f_s, m)
    region0 = f_s[..., :4, :].reshape(5, -1)
    assert torch.allclose(grams[0], region0 @ region0.t() / region0.shape[1], atol=1e-6)  # a per-region average
    assert area.tolist() == [0.5, 0.5, 0.0]
    loss = MaskedGramLoss(["relu1_1"])
    loss.set_target({"relu1_1": f_s}, m)
    loss.set_input_masks(m)
    assert loss({"relu1_1": f_s}).item() == pytest.approx(0.0, abs=1e-7)
    value = loss({"relu1_1": f_x})
    ref = gram_loss(masked_grams(f_x, m)[0][:2], grams[:2])
    assert torch.allclose(value, ref)
    value.backward()
    assert f_x.grad.abs().sum() > 0
    # swapping the target regions changes the loss: region r is compared with region r only
    swapped = m[:, [1, 0, 2]]
    loss.set_input_masks(swapped)
    assert not torch.allclose(loss({"relu1_1": f_s}), torch.zeros(()))
    assert gram_matrix(f_s).shape == (1, 5, 5)


def test_masked_grams_of_few_channels_match_the_masked_copies():
    """With no more channels than regions (the colour term on pixels) masked_grams weights channel products by the
    squared masks instead of masking copies: same Grams, same gradient."""
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(1, 3, 12, 10, generator=gen, dtype=torch.float64).requires_grad_(True)
    m = torch.rand(1, 5, 12, 10, generator=gen, dtype=torch.float64)
    grams, area = masked_grams(x, m)
    ref = gram_matrix(x * m.transpose(0, 1)) / area.view(-1, 1, 1)
    assert torch.allclose(grams, ref)
    (grad,) = torch.autograd.grad(grams.square().sum(), x)
    (ref_grad,) = torch.autograd.grad(ref.square().sum(), x)
    assert torch.allclose(grad, ref_grad)


def test_principal_channels_are_orthonormal_strongest_first_and_a_full_basis_keeps_the_nccs():
    gen = torch.Generator().manual_seed(4)
    f = torch.randn(1, 12, 9, 9, generator=gen) * torch.linspace(3, 0.1, 12)[None, :, None, None]
    basis = principal_channels([f], 12)
    assert torch.allclose(basis.t() @ basis, torch.eye(12), atol=1e-5)
    energy = project_channels(f, basis).pow(2).sum((0, 2, 3))
    assert (energy[:-1] >= energy[1:]).all()  # strongest first
    # the whole basis is a rotation: patch NCCs, hence matches, are those of the full features
    x = torch.randn(1, 12, 8, 8, generator=gen)
    full = ncc_patches(x, 3)[0] @ ncc_patches(f, 3)[0].t()
    rotated = ncc_patches(project_channels(x, basis), 3)[0] @ ncc_patches(project_channels(f, basis), 3)[0].t()
    assert torch.allclose(full, rotated, atol=1e-5)


@pytest.fixture(scope="module")
def painting_features():
    """relu3_1 of two paintings at 128 px: real VGG features, whose channels are far from independent."""
    from semstyle.core.encoder import vgg19_encoder
    from semstyle.core.image import load_image

    encoder = vgg19_encoder("avg", "fp32", "cpu")
    with torch.no_grad():
        return [
            encoder(load_image(ASSETS / "styles" / name, 128), ["relu3_1"])
            for name in ("starry_night.jpg", "shipwreck.jpg")
        ]


@pytest.mark.parametrize("guided", [False, True])
def test_search_on_principal_channels_finds_nearly_the_exact_matches(painting_features, guided):
    style, synthesis = painting_features
    h, w = style["relu3_1"].shape[-2:]
    feature = F.interpolate(synthesis["relu3_1"], (h, w), mode="bilinear")
    matches, ncc = {}, {}
    for channels in (0, 32):
        loss = MRFLoss(["relu3_1"], semantic_weight=10.0 if guided else 0.0, match_channels=channels)
        loss.set_target(style, _region_masks(h, w, 0) if guided else None)
        loss.set_input_masks(_region_masks(h, w, 1.5) if guided else None)
        matches[channels] = index = loss.match("relu3_1", feature)
        # the loss pulls towards the full patches of those matches
        patches = extract_patches(style["relu3_1"], 3)[index]
        assert torch.allclose(loss({"relu3_1": feature}), mrf_loss(feature, patches), rtol=1e-4)
        unit = patches / patches.norm(dim=1, keepdim=True)
        ncc[channels] = (ncc_patches(feature, 3)[0] * unit).sum(1)  # of features
    # 32 of 256 channels: most matches exact (0.74-0.79 here), the others near-ties whose feature NCC is barely lower
    # (by 0.003 on average, of a mean 0.56; 8 channels lose 0.02-0.03)
    assert (matches[32] == matches[0]).float().mean() > 0.7
    assert ncc[32].mean() > ncc[0].mean() - 0.01
    if not guided:  # unguided, the exact search maximises the feature NCC itself
        assert (ncc[32] <= ncc[0] + 1e-5).all()


@pytest.mark.parametrize("stride", [1, 2])
def test_overlay_from_style_pixels_equals_overlay_of_cut_patches(stride):
    """Two style copies of different sizes, one with dropped patches: reading the matched patches through the patch
    index gives the overlay of the explicitly cut patches."""
    gen = torch.Generator().manual_seed(stride)
    copies = [torch.randn(1, 5, 11, 9, generator=gen), torch.randn(1, 5, 8, 12, generator=gen)]
    valid = torch.ones(1, 1, 8, 12)
    valid[..., :3] = 0
    loss = MRFLoss(["relu3_1"], style_stride=stride, stride=stride)
    loss.set_target([{"relu3_1": c} for c in copies], valid=[torch.ones(1, 1, 11, 9), valid])
    cut = torch.cat([extract_patches(c, 3, stride) for c in copies])
    kept = torch.cat(
        [
            torch.ones(len(extract_patches(copies[0], 3, stride)), dtype=torch.bool),
            -F.max_pool2d(-valid, 3, stride).flatten() > 0.99,
        ]
    )
    cut = cut[kept]
    assert len(cut) == len(loss.style_rows["relu3_1"])
    rows = torch.randint(len(cut), (len(extract_patches(torch.zeros(1, 1, 10, 12), 3, stride)),), generator=gen)
    overlay = overlay_style_patches(
        loss.style_pixels["relu3_1"], loss.patch_index["relu3_1"], rows, (10, 12), 3, stride
    )
    assert torch.allclose(overlay, overlay_patches(cut[rows], (10, 12), 3, stride), atol=1e-5)


def test_shift_patches_stays_inside_its_copy_and_skips_dropped_patches():
    keep = torch.ones(4, 4, dtype=torch.bool)
    keep[1, 2] = False
    index = patch_index([(5, 5), (6, 6)], 3, 1, [None, keep.flatten()])  # grids 3x3 (rows 0-8), 4x4 (rows 9-23)
    rows = torch.tensor([0, 2, 8, 9, 9])
    moved = shift_patches(
        rows, torch.tensor([0, 0, 1, 1, 0]), torch.tensor([1, 1, 0, 1, 3]), index, torch.full_like(rows, -1)
    )
    # (0,0)->(0,1); (0,2)->(0,3) is off the 3x3 grid, not the next copy; (2,2)->(3,2) off; copy 2 (0,0)->(1,1);
    # copy 2 (0,0)->(0,3)
    assert moved.tolist() == [1, -1, -1, 9 + 5, 9 + 3]
    assert shift_patches(torch.tensor([9]), 1, 2, index, torch.tensor([-1])).item() == -1  # (1,2) was dropped


def test_patchmatch_converges_to_the_exact_matches_and_never_loses_score():
    """The synthesis is a shifted crop of the style plus noise: a coherent offset field that PatchMatch must
    recover from random matches by propagation and random search."""
    gen = torch.Generator().manual_seed(3)
    style = torch.randn(1, 16, 40, 44, generator=gen)
    synthesis = style[..., 5:35, 7:43] + 0.3 * torch.randn(1, 16, 30, 36, generator=gen)
    rows, _ = ncc_patches(synthesis, 3, 1, mask_scale=0.0)
    style_rows, _ = ncc_patches(style, 3, 1)
    exact, best = nearest_patches(rows, style_rows)
    index = patch_index([(40, 44)], 3, 1, [None])
    pools = sampling_pools(None, len(rows), len(style_rows))
    field = torch.randint(len(style_rows), (28, 34), generator=gen)
    shifts, previous = {}, (rows * style_rows[field.flatten()]).sum(1)
    for iteration in range(12):
        field = patchmatch_step(rows, style_rows, field, index, pools, iteration, gen, shifts)
        score = (rows * style_rows[field.flatten()]).sum(1)
        assert (score >= previous - 1e-5).all()
        previous = score
    assert (field.flatten() == exact).float().mean() > 0.97
    assert torch.allclose(previous, best, atol=1e-4) or (best - previous).max() < 0.05


def test_patchmatch_search_in_the_loss_starts_exact_then_tracks_changing_features():
    gen = torch.Generator().manual_seed(4)
    s = torch.rand(1, 8, 52, 56, generator=gen)
    x = s[..., 4:48, 3:53].clone()  # 42 x 48 synthesis patches, 50 x 54 style patches: above PATCHMATCH_MIN_SCORES
    sm, xm = _region_masks(52, 56, 0), _region_masks(44, 50, 1.5)
    exact, fast = (MRFLoss(["relu3_1"], semantic_weight=10.0, search=search) for search in ("exact", "patchmatch"))
    for loss in (exact, fast):
        loss.set_target({"relu3_1": s}, sm)
        loss.set_input_masks(xm)
    assert torch.equal(fast.match("relu3_1", x), exact.match("relu3_1", x))  # the first search is exact
    for step in range(10):  # the features drift, as in an optimisation; PatchMatch follows from its last matches
        x = x + 0.05 * torch.randn(x.shape, generator=gen)
        found = fast.match("relu3_1", x)
    assert fast._field["relu3_1", 0][2] == 10  # ten PatchMatch steps, no new exact search
    best = exact.match("relu3_1", x)
    assert (found == best).float().mean() > 0.85  # 0.89 here; the others are near-ties:
    xp, sp = F.normalize(extract_patches(x, 3), dim=1), F.normalize(extract_patches(s, 3), dim=1)
    assert (xp * sp[found]).sum(1).mean() > (xp * sp[best]).sum(1).mean() - 0.01


def test_search_every_keeps_the_matches_between_searches_and_searches_at_a_new_size():
    gen = torch.Generator().manual_seed(5)
    s = torch.rand(1, 8, 20, 24, generator=gen)
    loss = MRFLoss(["relu3_1"], search_every=3)
    loss.set_target({"relu3_1": s})
    x = s[..., 2:18, 3:21]  # a crop of the style: its matches are known
    shifted = s[..., 1:17, 4:22]  # another crop: other matches
    loss({"relu3_1": x})
    first = loss.last_index["relu3_1"].clone()
    values = [loss({"relu3_1": shifted}) for _ in range(2)]  # calls 2 and 3 keep the first call's matches
    assert torch.equal(loss.last_index["relu3_1"], first)
    assert values[0].item() > 0  # the crop's own matches no longer fit
    loss({"relu3_1": shifted})  # call 4 searches again
    assert not torch.equal(loss.last_index["relu3_1"], first)
    assert loss({"relu3_1": shifted}).item() == pytest.approx(0.0, abs=1e-5)  # and finds the crop's own patches
    loss({"relu3_1": s[..., :12, :12]})  # a new size (a new phase) always searches
    assert len(loss.last_index["relu3_1"]) == 100
