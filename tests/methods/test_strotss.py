"""STROTSS: Laplacian pyramid, relaxed EMD, moments, self-similarity, the loss module and the method end to end."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ASSETS, ROOT
from PIL import Image

from semstyle.api import load_config
from semstyle.conf.vocab import STROTSS_LAYERS
from semstyle.core.encoder import vgg19_encoder
from semstyle.core.hypercolumn import pixel_points, sample_hypercolumns
from semstyle.core.image import load_image, resize
from semstyle.core.pyramid import LaplacianPyramid, high_pass, laplacian_pyramid, reconstruct
from semstyle.core.semantic import RegionMasks
from semstyle.engine import Objective
from semstyle.errors import ConfigError, ImageError
from semstyle.losses.strotss import (
    SamplePoints,
    SelfSimilarityLoss,
    StrotssStyleLoss,
    color_emd,
    feature_moments,
    moment_loss,
    nearest_neighbours,
    relaxed_emd,
    self_similarity_loss,
    strotss_weights,
)

# -- pyramid ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 3, 64, 48), (2, 3, 43, 61)])
def test_pyramid_reconstructs_exactly_any_size(shape):
    x = torch.rand(shape)
    pyr = laplacian_pyramid(x, 5)
    assert len(pyr) == 6 and pyr[0].shape == x.shape and pyr[1].shape[-2:] == (shape[2] // 2, shape[3] // 2)
    assert torch.allclose(reconstruct(pyr), x, atol=1e-5)
    # bands are band-pass: the finest band of a constant image is zero, the residual holds the mean
    flat = torch.full(shape, 0.3)
    assert high_pass(flat).abs().max() < 1e-5


def test_pyramid_module_is_trainable_and_moves_low_frequencies_fast():
    x = torch.rand(1, 3, 32, 32)
    pyr = LaplacianPyramid(x, 4)
    assert torch.allclose(pyr(), x, atol=1e-5)
    target = x + 0.2  # a pure colour shift: one residual coefficient per channel explains it
    opt = torch.optim.RMSprop(pyr.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        (pyr() - target).pow(2).mean().backward()
        opt.step()
    assert (pyr() - target).abs().mean() < 0.05
    assert all(p.grad is not None for p in pyr.parameters())


# -- relaxed EMD --------------------------------------------------------------------------------------------------


def _dense_remd(x, y, cost):
    c = (
        1 - F.normalize(x, dim=1) @ F.normalize(y, dim=1).T
        if cost == "cosine"
        else torch.cdist(x, y) / x.shape[1] ** 0.5
    )
    return torch.maximum(c.min(1).values.mean(), c.min(0).values.mean()), c


@pytest.mark.parametrize("cost", ["cosine", "l2"])
def test_relaxed_emd_zero_symmetric_and_grows_with_shift(cost):
    x, y = torch.randn(60, 16), torch.randn(80, 16)
    assert relaxed_emd(x, x.clone(), cost) < 1e-5
    assert torch.allclose(relaxed_emd(x, y, cost), relaxed_emd(y, x, cost), atol=1e-6)
    near, far = relaxed_emd(x, x + 0.1, cost), relaxed_emd(x, x + 2.0, cost)
    assert 0 < near < far
    # a subset of x matches x one way only: the max of the two relaxations sees the missing points
    assert relaxed_emd(x, x[:10], cost) > 0.05


@pytest.mark.parametrize("cost", ["cosine", "l2"])
def test_relaxed_emd_matches_brute_force_relaxed_transport(cost):
    """Each relaxation (one marginal dropped) of the transport LP is solved by brute force over all vertex plans,
    i.e. all maps X -> Y (and Y -> X); REMD is their max and a lower bound of the exact EMD (all matchings)."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    _, c = _dense_remd(x, y, cost)
    n, m = c.shape
    forward = min(sum(c[i, f[i]] for i in range(n)) / n for f in itertools.product(range(m), repeat=n))
    backward = min(sum(c[f[j], j] for j in range(m)) / m for f in itertools.product(range(n), repeat=m))
    emd = min(sum(c[i, p[i]] for i in range(n)) / n for p in itertools.permutations(range(m)))
    remd = relaxed_emd(x, y, cost)
    assert torch.allclose(remd, torch.maximum(forward, backward), atol=1e-5)
    assert remd <= emd + 1e-6


@pytest.mark.parametrize("cost", ["cosine", "l2"])
@pytest.mark.parametrize("y_grad", [False, True])
def test_relaxed_emd_gradient_equals_dense_min(cost, y_grad):
    x = torch.randn(50, 8, requires_grad=True)
    y = torch.randn(70, 8, requires_grad=y_grad)
    relaxed_emd(x, y, cost).backward()
    gx, gy = x.grad.clone(), (y.grad.clone() if y_grad else None)
    x.grad = None
    if y_grad:
        y.grad = None
    _dense_remd(x, y, cost)[0].backward()
    assert torch.allclose(gx, x.grad, atol=1e-5)
    if y_grad:
        assert torch.allclose(gy, y.grad, atol=1e-5)


def test_nearest_neighbours_chunked_and_bf16():
    x, y = F.normalize(torch.randn(300, 64), dim=1), F.normalize(torch.randn(500, 64), dim=1)
    full = nearest_neighbours(x, y)
    chunked = nearest_neighbours(x, y, chunk_entries=7 * 500)  # 7-row chunks
    assert all(torch.equal(a, b) for a, b in zip(full, chunked))
    assert torch.equal(full[0], (x @ y.T).argmax(1)) and torch.equal(full[1], (x @ y.T).argmax(0))
    exact, fast = relaxed_emd(x, y), relaxed_emd(x, y, bf16=True)
    assert exact <= fast + 1e-6 and fast - exact < 0.005  # bf16 may pick a neighbour within ~0.004 of the best


def test_color_emd_uses_yuv_l2():
    red, blue = torch.tensor([[1.0, 0, 0]]).repeat(20, 1), torch.tensor([[0, 0, 1.0]]).repeat(20, 1)
    assert color_emd(red, red) < 1e-5
    dark_red = red * 0.5  # same hue: a cosine cost would call it identical, the L2 colour cost must not
    assert color_emd(red, dark_red) > 0.05 and color_emd(red, blue) > color_emd(red, dark_red)


# -- moments and self-similarity ----------------------------------------------------------------------------------


def test_moment_loss():
    x, y = torch.randn(400, 12), torch.randn(500, 12) * 2 + 1
    assert moment_loss(x, x) < 1e-6
    assert torch.allclose(moment_loss(x, y), moment_loss(x, feature_moments(y)))
    mean, cov = feature_moments(y)
    assert torch.allclose(cov, torch.cov(y.T, correction=0), atol=1e-4)
    assert moment_loss(x, y) > moment_loss(x, x * 1.1) > 0
    assert torch.allclose(moment_loss(x, y, bf16=True), moment_loss(x, y), rtol=0.02)


def test_moment_loss_gradient_matches_autograd_of_the_formula():
    x = torch.randn(30, 6, dtype=torch.float64, requires_grad=True)
    y = torch.randn(40, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(moment_loss, (x, y))  # custom backward of the covariance term

    def formula(a, b):
        (ma, ca), (mb, cb) = (a.mean(0), torch.cov(a.T, correction=0)), (b.mean(0), torch.cov(b.T, correction=0))
        return (ma - mb).abs().mean() + (ca - cb).abs().mean()

    for got, want in zip(torch.autograd.grad(moment_loss(x, y), (x, y)), torch.autograd.grad(formula(x, y), (x, y))):
        assert torch.allclose(got, want, atol=1e-10)


def test_self_similarity_pure_invariances():
    c = torch.randn(64, 32).abs()
    x = c * 3.0  # rescaled features: same cosine structure
    assert self_similarity_loss(x, c) < 1e-5
    perm = torch.randperm(64)
    assert self_similarity_loss(x[perm], c[perm]) < 1e-5  # the order of the locations does not matter
    assert self_similarity_loss(x[perm], c) > 0.1  # but scrambling which location is which does


@pytest.fixture(scope="module")
def encoder():
    return vgg19_encoder("max", "fp32", "cpu")


@pytest.fixture(scope="module")
def tubingen(assets_dir):
    return load_image(assets_dir / "content/tubingen.jpg", 96)


def test_self_similarity_loss_ignores_colour_change_but_not_scrambled_structure(encoder, tubingen):
    feats = encoder(tubingen, STROTSS_LAYERS)
    points = pixel_points(torch.ones(tubingen.shape[-2:], dtype=torch.bool), 512, torch.Generator().manual_seed(0))
    hc = sample_hypercolumns(feats, STROTSS_LAYERS, points, tubingen)[0]

    def loss_of(image):
        return float(
            self_similarity_loss(
                sample_hypercolumns(encoder(image, STROTSS_LAYERS), STROTSS_LAYERS, points, image)[0], hc
            )
        )

    recoloured = tubingen[:, [2, 0, 1]] * 0.8 + 0.1  # channels rotated and contrast lowered: same structure
    h, w = tubingen.shape[-2:]
    tiles = tubingen[..., : h // 16 * 16, : w // 16 * 16].unfold(2, 16, 16).unfold(3, 16, 16)  # 16 px tiles
    gh, gw = tiles.shape[2:4]
    order = torch.randperm(gh * gw, generator=torch.Generator().manual_seed(0))
    shuffled = tiles.reshape(1, 3, gh * gw, 16, 16)[:, :, order].reshape(1, 3, gh, gw, 16, 16)
    scrambled = resize(shuffled.permute(0, 1, 2, 4, 3, 5).reshape(1, 3, gh * 16, gw * 16), (h, w))
    same, colour, scramble = loss_of(tubingen), loss_of(recoloured), loss_of(scrambled)
    assert same < 1e-5
    assert scramble > 3 * colour, (colour, scramble)


# -- the loss module ----------------------------------------------------------------------------------------------


def _strotss_objective(encoder, samples, style_samples, content_weight=16.0):
    points = SamplePoints(samples, seed=0)
    terms = {
        "content": (SelfSimilarityLoss(points), 1.0),
        "style": (StrotssStyleLoss(points, style_samples=style_samples), 1.0),
    }
    objective = Objective(encoder, terms, before_step=(points.resample,))
    objective.weights.update(strotss_weights(content_weight))
    return objective, points


def test_strotss_terms_on_the_objective(encoder, tubingen, assets_dir):
    style = load_image(assets_dir / "styles/starry_night.jpg", 96)
    objective, points = _strotss_objective(encoder, 256, 800)
    with pytest.raises(ConfigError, match="set_regions"):
        points.resample()
    points.set_regions(tubingen.shape[-2:])
    with torch.no_grad():
        objective.terms["content"].set_target(objective.features(tubingen))
        objective.terms["style"].set_target(objective.features(style))
    assert objective.terms["style"].style_sets[0]["unit"].shape == (800, 2179)
    image = tubingen.clone().requires_grad_(True)
    total, terms = objective(image)
    assert set(terms) == {"content", "style.remd", "style.moment", "style.color"}
    assert abs(float(total.detach()) - sum(terms.values())) < 1e-5
    assert terms["content"] < 1e-6  # the content image has the content's self-similarity
    total.backward()
    assert image.grad.abs().sum() > 0
    # a style crop is far closer in style than the photo, far worse in content
    crop = resize(style, tuple(tubingen.shape[-2:]))
    _, crop_terms = objective(crop)
    assert crop_terms["style.remd"] < terms["style.remd"] and crop_terms["content"] > 0.01
    with pytest.raises(ConfigError, match="regions were set"):
        objective(resize(tubingen, 64))


def test_strotss_views_share_their_points(encoder, tubingen, assets_dir):
    """DST's use: content on X, style on the warped W(X), both read at the same points in one step."""
    style = load_image(assets_dir / "styles/starry_night.jpg", 96)
    crop = resize(style, tuple(tubingen.shape[-2:]))
    points = SamplePoints(256, seed=0)
    style_term = StrotssStyleLoss(points, style_samples=800)
    weights = strotss_weights(16.0)
    objective = Objective(
        encoder,
        {
            "content": (SelfSimilarityLoss(points), weights["content"]),
            "style": (style_term, weights["style"]),
            "style_warped": (style_term, weights["style"], "warped"),
        },
        before_step=(points.resample,),
    )
    points.set_regions(tubingen.shape[-2:])
    with torch.no_grad():
        objective.terms["content"].set_target(objective.features(tubingen))
        style_term.set_target(objective.features(style))
    _, terms = objective({"image": tubingen, "warped": crop})
    assert terms["content"] < 1e-6 and terms["style_warped.remd"] < terms["style.remd"]
    drawn = list(points.points)
    _, again = objective({"image": crop, "warped": tubingen})  # the views swapped, fresh points
    assert not torch.equal(drawn[0], points.points[0])
    assert again["style.remd"] < again["style_warped.remd"]


def test_strotss_region_errors(encoder, tubingen):
    h, w = tubingen.shape[-2:]
    two = torch.zeros(1, 2, h, w)
    two[:, 0, :, : w // 2] = 1
    two[:, 1, :, w // 2 :] = 1
    objective, points = _strotss_objective(encoder, 64, 64)
    style_term = objective.terms["style"]
    features = objective.features(tubingen)
    points.set_regions((h, w), RegionMasks(two))
    with pytest.raises(ImageError, match="region counts"):
        style_term.set_target(features, RegionMasks(two[:, :1]))
    style_missing = two.clone()
    style_missing[:, 1] = 0
    with pytest.raises(ImageError, match="region 1"):
        style_term.set_target(features, RegionMasks(style_missing))
    with pytest.raises(ImageError, match="no region has any pixels"):
        points.set_regions((h, w), RegionMasks(torch.zeros(1, 2, h, w)))
    points.set_regions((h, w), RegionMasks(two))
    style_term.set_target(features, RegionMasks(two))
    points.resample()
    assert len(points.points) == 2 and all(p.shape == (64, 2) for p in points.points)
    assert (points.points[0][:, 0] < 0).all() and (points.points[1][:, 0] > 0).all()  # left half, right half


# -- the method ---------------------------------------------------------------------------------------------------


def test_config_validation():
    cfg = load_config({"method": "strotss"}, ["size=128", "steps=20"])
    assert cfg.scales == [64, 128, 256] and cfg.optimizer == "rmsprop"
    for bad, match in [
        ("optimizer=lbfgs", "optimizer"),
        ("lr=0", "lr"),
        ("samples=1", "samples"),
        ("content_map=a.png", "both maps"),
        ("pyramid_levels=-1", "pyramid_levels"),
    ]:
        with pytest.raises(ConfigError, match=match):
            load_config({"method": "strotss"}, [bad])


def _totals(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {s: [float(r["total"]) for r in rows if r["scale"] == str(s)] for s in {int(r["scale"]) for r in rows}}


def test_two_scale_run_lowers_the_loss(tmp_path):
    from semstyle.api import run

    out = run(
        str(ROOT / "configs/strotss/default.yaml"),
        [
            f"content={ASSETS / 'content/tubingen.jpg'}",
            f"style={ASSETS / 'styles/starry_night.jpg'}",
            "size=128",
            "steps=16",
            f"out_dir={tmp_path / 'run'}",
            "progress=false",
            "samples=256",
            "style_samples=1000",
        ],
    )
    assert {p.name for p in out.iterdir()} >= {"output.png", "losses.csv", "losses.png", "config.yaml"}
    header = (out / "losses.csv").read_text().splitlines()[0]
    assert header.split(",")[2:6] == ["content", "style.remd", "style.moment", "style.color"]
    totals = _totals(out / "losses.csv")
    assert sorted(totals) == [0, 1]
    for values in totals.values():  # the loss is stochastic (random locations): compare 4-step averages
        assert sum(values[-4:]) < 0.9 * sum(values[:4]), values
    output = load_image(out / "output.png")
    assert output.shape[-2:] == (96, 128)


def _region_error(image, masks, style, style_masks):
    """Mean over regions of the RGB distance between the output's and the style's mean colour in that region."""
    masks, style_masks = (
        resize(masks, tuple(image.shape[-2:]), "area"),
        resize(style_masks, tuple(style.shape[-2:]), "area"),
    )

    def mean(img, m):  # (1, K) per channel
        return (img * m).sum((2, 3)) / m.sum((2, 3)).clamp_min(1e-6)

    errs = [
        (mean(image, masks[:, k : k + 1]) - mean(style, style_masks[:, k : k + 1])).norm()
        for k in range(masks.shape[1])
    ]
    return float(torch.stack(errs).mean())


@pytest.mark.shared_data
def test_guidance_beats_unguided_on_region_fidelity(shared_data):
    from semstyle.core.semantic import load_map
    from semstyle.methods.strotss import guidance_masks, stylize

    d = shared_data / "doodle/strotss_bouquet"
    content, style = load_image(d / "content.jpg"), load_image(d / "style.jpg", 512)
    content_map, style_map = load_map(d / "target_sem.jpg"), load_map(d / "style_sem.jpg", (style.shape[-2:]))
    # α = 2 (the reference's last-scale weight) lets the style terms act within a few steps
    options = dict(size=96, steps=10, progress=False, samples=128, style_samples=500, content_weight=2.0)
    guided = stylize(content, style, content_map, style_map, **options)
    unguided = stylize(content, style, **options)
    content_masks, style_masks = guidance_masks(content, style, content_map, style_map)
    g = _region_error(guided, content_masks, style, style_masks)
    u = _region_error(unguided, content_masks, style, style_masks)
    assert g < 0.8 * u, (g, u)


def test_a_content_map_colour_missing_from_the_style_map_names_the_file(tmp_path):
    from semstyle.api import run

    image = Image.open(ASSETS / "content/astronaut.jpg").resize((64, 64))
    image.save(tmp_path / "content.png")
    halves = np.zeros((64, 64, 3), np.uint8)
    halves[:, :32] = (255, 0, 0)
    halves[:, 32:] = (0, 0, 255)
    Image.fromarray(halves).save(tmp_path / "style_sem.png")
    halves[40:, :] = (0, 255, 0)  # a region the style map has no colour for
    Image.fromarray(halves).save(tmp_path / "content_sem.png")
    overrides = [f"content={tmp_path / 'content.png'}", f"style={tmp_path / 'content.png'}", "size=64", "scales=[]"]
    maps = [f"content_map={tmp_path / 'content_sem.png'}", f"style_map={tmp_path / 'style_sem.png'}"]
    with pytest.raises(ConfigError, match=rf"^content_map {tmp_path / 'content_sem.png'}: colour \(0, 255, 0\)"):
        run({"method": "strotss"}, [*overrides, *maps, "steps=1", f"out_dir={tmp_path / 'run'}"])
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()
