"""Keypoint I/O (DST text format) and Umeyama similarity alignment."""

from __future__ import annotations

import doctest
import json
import math

import pytest
import torch
from conftest import SHARED, needs_shared

from semstyle.conf import keypoint_files
from semstyle.conf.keypoint_files import check_keypoint_pairs
from semstyle.errors import SemstyleError
from semstyle.geometry.keypoints import (
    read_correspondences,
    read_keypoints,
    similarity_align,
    umeyama,
    write_correspondences,
    write_keypoints,
)


def _rotation(theta: float) -> torch.Tensor:
    return torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])


def test_round_trip_is_exact(tmp_path):
    pa = torch.randint(0, 200, (37, 2)).float()
    pb = torch.randint(0, 300, (37, 2)).float()
    act = torch.rand(37) * 3
    write_correspondences(tmp_path, pa, pb, act, meta={"image_a": "a.png"})
    ra, rb, ract = read_correspondences(
        tmp_path / "correspondence_A.txt",
        tmp_path / "correspondence_B.txt",
        tmp_path / "correspondence_activation.txt",
        size_a=(200, 200),
        size_b=(300, 300),
    )
    assert torch.equal(ra, pa) and torch.equal(rb, pb)
    assert torch.allclose(ract, act, atol=1e-6)
    doc = json.loads((tmp_path / "correspondences.json").read_text())
    assert doc["points_a"] == pa.tolist() and doc["image_a"] == "a.png" and len(doc["activation"]) == 37


def test_text_format_is_row_col(tmp_path):
    write_keypoints(tmp_path / "p.txt", torch.tensor([[10.4, 3.6]]))  # x=10.4, y=3.6
    assert (tmp_path / "p.txt").read_text() == "4, 10\n"
    assert read_keypoints(tmp_path / "p.txt").tolist() == [[10.0, 4.0]]


@needs_shared
def test_reads_published_dst_points(tmp_path):
    d = SHARED / "portraits" / "dst_bunny"
    pa, pb, act = read_correspondences(
        d / "correspondence_A.txt",
        d / "correspondence_B.txt",
        d / "correspondence_activation.txt",
        size_a=(450, 450),
        size_b=(422, 610),
    )
    assert pa.shape == pb.shape == (32, 2) and act.shape == (32,)
    assert pa[0].tolist() == [232.0, 42.0]  # file line 1 is "42, 232" (row, col)
    assert (act[:-1] >= act[1:]).all() and act.min() >= 1.0
    write_correspondences(tmp_path, pa, pb, act)
    for name in ("correspondence_A.txt", "correspondence_B.txt", "correspondence_activation.txt"):
        assert (tmp_path / name).read_text() == (d / name).read_text()


@pytest.mark.parametrize(
    "text, match",
    [
        ("1, 2\n3\n", "line 2: expected 'row, col'"),
        ("1, 2\n3, x\n", "line 2: 'x' is not a number"),
        ("nan, 2\n", "line 1: 'nan' is not a finite number"),
        ("1, 2\n\n5, 120\n", "line 3: point .* outside the 100x50 image"),
        ("-1, 2\n", "line 1: point .* outside"),
    ],
)
def test_bad_keypoint_files(tmp_path, text, match):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(SemstyleError, match=match) as info:
        read_keypoints(path, image_size=(50, 100))
    assert "bad.txt" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "offset, same",
    [
        ((0.6, 0.0), False),  # 0.6 px apart: two pixels
        ((0.0, 0.49), True),  # in one cell of the half-pixel grid
        ((-0.02, 0.0), True),  # in the next cell, 0.02 px apart
        ((-0.3, -0.3), True),  # in the diagonal cell, at a negative y
        ((0.36, 0.36), False),  # in the diagonal cell, 0.51 px apart
    ],
)
def test_repeated_content_points_are_found_across_the_grid_cells(offset, same):
    # point 3 is point 1 moved by ``offset``; "the same pixel" means closer than half a pixel
    content = [(0.5, 0.0), (40.0, 9.0), (0.5 + offset[0], offset[1]), (3.0, 30.0)]
    style = [(1.0, 1.0), (2.0, 2.0), (3.0, 3.0), (4.0, 4.0)]
    if not same:
        check_keypoint_pairs(content, style, "points")
        return
    with pytest.raises(SemstyleError, match=r"^points: content keypoints 1 and 3 are the same pixel \(0.5, 0\)"):
        check_keypoint_pairs(content, style, "points")
    # tensors (N, 2) as the methods hold them
    with pytest.raises(SemstyleError, match="1 and 3"):
        check_keypoint_pairs(torch.tensor(content), torch.tensor(style), "points")
    assert doctest.testmod(keypoint_files).failed == 0


def test_bad_correspondence_sets(tmp_path):
    (tmp_path / "a.txt").write_text("1, 2\n3, 4\n")
    (tmp_path / "b.txt").write_text("1, 2\n")
    (tmp_path / "act.txt").write_text("1.5\n")
    with pytest.raises(SemstyleError, match="2 vs 1 points"):
        read_correspondences(tmp_path / "a.txt", tmp_path / "b.txt")
    with pytest.raises(SemstyleError, match="act.txt: 1 values"):
        read_correspondences(tmp_path / "a.txt", tmp_path / "a.txt", tmp_path / "act.txt")
    with pytest.raises(SemstyleError, match="missing.txt: file not found"):
        read_keypoints(tmp_path / "missing.txt")
    with pytest.raises(SemstyleError, match="NaN"):
        write_keypoints(tmp_path / "n.txt", torch.tensor([[float("nan"), 1.0]]))
    with pytest.raises(SemstyleError, match="2 points in A but 1 in B"):
        write_correspondences(tmp_path, torch.zeros(2, 2), torch.zeros(1, 2))


def test_umeyama_recovers_similarity():
    g = torch.Generator().manual_seed(1)
    src = torch.rand(30, 2, generator=g) * 200
    rot = _rotation(0.4)
    dst = 1.3 * src @ rot.T + torch.tensor([12.0, -7.0])
    scale, r, t = umeyama(src, dst)
    assert scale == pytest.approx(1.3, rel=1e-5)
    assert torch.allclose(r, rot, atol=1e-5) and torch.allclose(t, torch.tensor([12.0, -7.0]), atol=1e-3)
    assert umeyama(src, dst, with_scale=False)[0] == 1.0
    for fit in ("dst_to_src", "src_to_dst"):  # style points brought back into the content frame
        assert torch.allclose(similarity_align(dst, src, fit=fit), src, atol=1e-3)


def test_umeyama_never_reflects():
    src = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 5.0], [3.0, 7.0]])
    mirrored = src * torch.tensor([-1.0, 1.0])
    _, r, _ = umeyama(src, mirrored)
    assert torch.det(r) == pytest.approx(1.0, abs=1e-5)
