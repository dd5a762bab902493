"""Neural Best-Buddies: accuracy on known warps, identity, aspect-ratio mapping, DST cleaning rules, CLI, bad input."""

from __future__ import annotations

import pytest
import torch
from conftest import ASSETS, SHARED, needs_shared
from known_warp import known_warp, pck

from semstyle.cli import main
from semstyle.core.image import load_image, resize
from semstyle.errors import ConfigError, ImageError, SemstyleError
from semstyle.geometry.keypoints import (
    clean_points,
    kmeans_select,
    nbb_keypoints,
    read_correspondences,
    similarity_align,
)
from semstyle.geometry.keypoints.clean import crossing_matrix, greedy_select, remove_crossing, to_grid

SIZE = 128  # working long side for the tests: relu5_1 is 8x8, relu1_1 128x128


def check_known_warp(path, fast: bool):
    image = load_image(path, SIZE)
    partner, g = known_warp(image, (SIZE - 16, SIZE + 16))  # another size and aspect ratio
    result = nbb_keypoints(image, partner, fast=fast, size=SIZE)
    assert len(result) >= 100
    assert pck(result.points_a, result.points_b, g, image.shape[-2:]) >= 0.8
    sel = kmeans_select(result.points_a, result.points_b, result.activation, 30)
    assert len(sel) == 30
    assert pck(result.points_a[sel], result.points_b[sel], g, image.shape[-2:]) >= 0.8


def test_known_warp_bundled_asset():
    check_known_warp(ASSETS / "content" / "astronaut.jpg", fast=False)


@needs_shared
@pytest.mark.parametrize(
    "name, fast", [("content/tubingen.jpg", False), ("portraits/nbb_cat_lion/original_B.png", True)]
)
def test_known_warp_real_images(name, fast):
    check_known_warp(SHARED / name, fast)


def test_identity_gives_zero_displacement():
    image = load_image(ASSETS / "styles" / "monalisa.jpg", SIZE)
    pa, pb, act = nbb_keypoints(image, image.clone(), size=SIZE)
    assert len(pa) >= 100
    assert torch.equal(pa, pb)
    assert (act[:-1] >= act[1:]).all() and act.max() <= 5 and act.min() > 0


def test_aspect_ratio_mapping_is_exact():
    """B = A resized to another shape: every pair must follow the resize, in original pixels of each image."""
    image = load_image(ASSETS / "content" / "astronaut.jpg", (96, 96))
    other = resize(image, (192, 144))  # 2x taller, 1.5x wider
    result = nbb_keypoints(image, other, size=96)
    assert result.size_a == (96, 96) and result.size_b == (192, 144)
    expected = (result.points_a + 0.5) * torch.tensor([1.5, 2.0]) - 0.5
    err = (result.points_b - expected).abs()
    assert len(result) >= 50 and (err.median(0).values <= torch.tensor([1.5, 2.0])).all()
    assert (result.points_b[:, 0] <= 143).all() and (result.points_b[:, 1] <= 191).all()


def test_coordinate_mapping_is_exact():
    """Cell centres and working -> original pixels: pixel edges map to pixel edges on each axis."""
    from semstyle.geometry.keypoints.nbb import _cells_to_pixels, _to_original

    cells = torch.tensor([0, 5, 3 * 10 + 9])  # a 10-wide map with stride 4: cells (0,0), (5,0), (9,3)
    assert _cells_to_pixels(cells, 10, 4).tolist() == [[1.5, 1.5], [21.5, 1.5], [37.5, 13.5]]
    work, orig = (60, 40), (300, 100)  # (H, W): x scales by 2.5, y by 5
    pts = torch.tensor([[-0.5, -0.5], [19.5, 29.5], [39.0, 59.0]])
    assert torch.allclose(_to_original(pts, work, orig), torch.tensor([[0.0, 0.0], [49.5, 149.5], [98.25, 297.0]]))


def test_k_selection_and_border():
    image = load_image(ASSETS / "content" / "astronaut.jpg", 96)
    partner, _ = known_warp(image, (96, 96))
    result = nbb_keypoints(image, partner, k=12, size=96, border=10)
    assert len(result) == 12 and result.candidates > 12
    assert (result.activation[:-1] >= result.activation[1:]).all()
    for pts in (result.points_a, result.points_b):
        assert (pts >= 10 - 1).all() and (pts <= 96 - 10).all()
    assert [level.layer for level in result.levels] == ["relu5_1", "relu4_1", "relu3_1", "relu2_1", "relu1_1"]
    fast = nbb_keypoints(image, partner, fast=True, size=96, k_per_level=50)
    assert fast.levels[-1].layer == "relu2_1" and all(len(level.activation) <= 50 for level in fast.levels)
    assert (fast.points_a % 2 == 0).all()  # relu2_1 cells are 2 px: DST's NBB reports 2 x cell index


# ---- DST cleaning -------------------------------------------------------------------------------------------


def _segments_cross(p1, p2, p3, p4) -> bool:
    """Independent check: proper intersection of segments p1p2 and p3p4 by orientations."""

    def orient(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    return orient(p1, p2, p3) * orient(p1, p2, p4) < 0 and orient(p3, p4, p1) * orient(p3, p4, p2) < 0


def test_crossing_matrix_matches_orientation_test():
    g = torch.Generator().manual_seed(3)
    starts, ends = torch.rand(40, 2, generator=g) * 100, torch.rand(40, 2, generator=g) * 100
    cross = crossing_matrix(starts, ends)
    for i in range(40):
        for j in range(40):
            if i != j:
                assert bool(cross[i, j]) == _segments_cross(starts[i], ends[i], starts[j], ends[j])
    keep = remove_crossing(starts, ends)
    kept = keep.nonzero().flatten()
    assert not cross[kept][:, kept].any()  # kept segments never cross each other
    for j in (~keep).nonzero().flatten().tolist():  # each removed one crosses an earlier kept one
        assert cross[kept[kept < j], j].any()


def test_greedy_selection_spacing():
    g = torch.Generator().manual_seed(0)
    points = torch.rand(500, 2, generator=g) * 256
    act = torch.rand(500, generator=g) + 1
    sel = greedy_select(points, act, max_num_points=80, b=10)
    assert 0 < len(sel) <= 80 and len(set(sel.tolist())) == len(sel)
    assert (act[sel][:-1] >= act[sel][1:]).all()
    assert act[sel[0]] == act.max()
    d = (points[sel][:, None] - points[sel][None]).abs().amax(2) + torch.eye(len(sel)) * 1e9
    assert d.min() > 10  # no two within +-b on both axes
    # every unselected point was suppressed by a better selected one (or the cap was reached)
    if len(sel) < 80:
        rest = torch.ones(500, dtype=torch.bool)
        rest[sel] = False
        near = ((points[rest][:, None] - points[sel][None]).abs() <= 10).all(2)
        assert near.any(1).all()


def test_clean_points_rules():
    """On a set with outliers: activation < 1 dropped, spacing at 256 px, aligned targets, original px."""
    g = torch.Generator().manual_seed(1)
    size_a, size_b = (300, 400), (600, 500)
    pa = torch.rand(300, 2, generator=g) * torch.tensor([399.0, 299.0])
    rot = torch.tensor([[0.98, -0.17], [0.17, 0.98]])
    pb = (pa * 1.4) @ rot.T + torch.tensor([20.0, 80.0]) + torch.randn(300, 2, generator=g) * 6
    pb[::10] = torch.rand(30, 2, generator=g) * torch.tensor([499.0, 599.0])  # gross outliers that cross
    act = torch.rand(300, generator=g) * 2.5
    ca, cb, cact, targets = clean_points(pa, pb, act, size_a, size_b, return_targets=True)
    assert 10 <= len(ca) <= 80 and (cact >= 1).all() and (cact[:-1] >= cact[1:]).all()
    # every kept pair is an input pair, back in original pixels
    dist, rows = torch.cdist(ca, pa, compute_mode="donot_use_mm_for_euclid_dist").min(1)
    assert dist.max() < 1e-3 and torch.allclose(pb[rows], cb, atol=1e-3) and torch.allclose(act[rows], cact)
    rows = rows.tolist()
    fac = 256 / 400
    grid = to_grid(ca, size_a)  # spacing is an exact integer test in the 256 px working frame, as in DST
    d = (grid[:, None] - grid[None]).abs().amax(2) + torch.eye(len(ca), dtype=torch.long) * 10**6
    assert d.min() > 10
    aligned = similarity_align(cb * 256 / 600, ca * fac)  # DST: style points into the content frame, clamped
    aligned = torch.minimum(aligned.clamp_min(1), torch.tensor([255.0, 191.0]))
    # the cleaning aligns the integer working-frame points: within ~1 working px of the float alignment
    assert (targets - aligned / fac).abs().max() < 1.5 / fac
    outliers = set(range(0, 300, 10))
    assert sum(r in outliers for r in rows) <= 2  # crossing removal throws out the inconsistent pairs


@needs_shared
def test_clean_published_dst_points_is_stable():
    d = SHARED / "portraits" / "dst_bunny"
    pa, pb, act = read_correspondences(
        d / "correspondence_A.txt",
        d / "correspondence_B.txt",
        d / "correspondence_activation.txt",
        (450, 450),
        (422, 610),
    )
    ca, cb, cact = clean_points(pa, pb, act, (450, 450), (422, 610))
    # DST's own output is a fixed point of its cleaning (tests/geometry/test_clean.py checks every path)
    assert torch.equal(ca, pa) and torch.equal(cb, pb) and torch.equal(cact, act)


# ---- CLI and bad input --------------------------------------------------------------------------------------


def test_cli_writes_files_and_pictures(tmp_path, capsys):
    a, b = ASSETS / "content" / "astronaut.jpg", ASSETS / "styles" / "monalisa.jpg"
    out = tmp_path / "nbb"
    assert (
        main(
            [
                "nbb",
                str(a),
                str(b),
                "--k",
                "10",
                "--fast",
                "--clean",
                "--levels",
                "--size",
                "96",
                "--k-per-level",
                "300",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    names = {p.name for p in out.iterdir()}
    assert {
        "correspondence_A.txt",
        "correspondence_B.txt",
        "correspondence_activation.txt",
        "correspondences.json",
        "correspondences.png",
        "level_relu5_1.png",
        "level_relu2_1.png",
    } <= names
    pa, pb, act = read_correspondences(
        out / "correspondence_A.txt",
        out / "correspondence_B.txt",
        out / "correspondence_activation.txt",
        size_a=(512, 512),
        size_b=(1024, 687),
    )
    assert 1 <= len(pa) <= 10 and (act >= 1).all()
    assert "pairs" in capsys.readouterr().out
    assert not (tmp_path / "nbb.partial").exists()
    # the same --out again: refused before any work, the first result untouched (issue 21, item 3)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["nbb", str(a), str(b), "--size", "96", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(out) in err and "not empty" in err and "\n" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and not (tmp_path / "nbb.partial").exists()


def test_bad_inputs(tmp_path, capsys):
    image = load_image(ASSETS / "content" / "astronaut.jpg", 64)
    with pytest.raises(ConfigError, match="size"):
        nbb_keypoints(image, image, size=16)
    with pytest.raises(ConfigError, match="k: 0"):
        nbb_keypoints(image, image, k=0)
    with pytest.raises(ImageError, match="image B: expected an RGB tensor"):
        nbb_keypoints(image, torch.rand(1, 1, 64, 64))
    with pytest.raises(ConfigError, match="too elongated"):
        nbb_keypoints(image, torch.rand(1, 3, 8, 400), size=128)
    with pytest.raises(SemstyleError, match="activations for"):
        clean_points(torch.zeros(3, 2), torch.zeros(3, 2), torch.ones(2), (10, 10), (10, 10))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    assert main(["nbb", str(tmp_path / "broken.png"), str(ASSETS / "styles" / "monalisa.jpg"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "image A" in err and "broken.png" in err and "\n" not in err
    assert main(["nbb", "a.png", "b.png", "--k", "-3"]) == 2
