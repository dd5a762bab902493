"""Face landmarks as DST keypoints, with a fake landmark source (MediaPipe is an optional extra that CI does not
install): the portrait pairs are cleaned the DST way, and DST falls back to NBB with a warning when no face is found
or the extra is missing."""

from __future__ import annotations

import math

import pytest
import torch

from semstyle.api import load_config
from semstyle.geometry.keypoints import landmarks
from semstyle.methods import dst


def _fake_face(n: int = 60):
    """A landmark source: ``n`` points on an oval in the content; the style's are the same points rotated by 10°,
    scaled by 0.8 and shifted, so landmark i of both images is one correspondence by construction."""
    t = torch.linspace(0, 2 * math.pi, n + 1)[:-1]
    oval = torch.stack([100 + 60 * torch.cos(t), 120 + 80 * torch.sin(t)], 1)
    angle = math.radians(10)
    rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    styled = (oval - oval.mean(0)) @ rot.T * 0.8 + torch.tensor([90.0, 110.0])

    def source(image):
        return oval.clone() if image.shape[-1] == 200 else styled.clone()

    return source, oval, styled


def test_face_keypoints_pair_landmarks_and_space_them_like_dst():
    source, oval, styled = _fake_face()
    content, style = torch.rand(1, 3, 240, 200), torch.rand(1, 3, 230, 180)
    pa, pb = landmarks.face_keypoints(
        content, style, max_points=20, b=10, im_size=256, landmarks=source, indices=list(range(60))
    )
    assert 3 <= len(pa) <= 20 and len(pa) == len(pb)
    rows = [int(torch.cdist(p[None], oval).argmin()) for p in pa]  # which landmark each kept point is
    assert torch.allclose(pa, oval[rows], atol=1e-4) and torch.allclose(pb, styled[rows], atol=1e-4)
    scale = 256 / 240  # DST's spacing b is in px of the working frame (long side 256)
    gaps = torch.cdist(pa * scale, pa * scale) + torch.eye(len(pa)) * 1e9
    assert gaps.min() >= 10 - 1e-3


def test_no_face_means_none():
    content = torch.rand(1, 3, 64, 64)
    assert landmarks.face_keypoints(content, content, landmarks=lambda image: None, indices=[0, 1, 2]) is None


@pytest.mark.parametrize("installed, found", [(False, None), (True, None)])
def test_dst_falls_back_to_nbb_with_a_warning(monkeypatch, installed, found):
    monkeypatch.setattr(dst, "landmarks_available", lambda: installed)
    monkeypatch.setattr(dst, "face_keypoints", lambda *args, **kwargs: found)
    nbb = (torch.tensor([[10.0, 10.0], [50.0, 12.0], [30.0, 40.0]]), torch.tensor([[12.0, 9.0], [48, 15], [33, 38]]))
    monkeypatch.setattr(dst, "_nbb_pairs", lambda content, style, cfg: (*nbb, None))
    cfg = load_config({"method": "dst", "keypoints": "faces", "progress": False})
    image = torch.rand(1, 3, 64, 64)
    with pytest.warns(UserWarning, match="MediaPipe is not installed" if not installed else "no face found"):
        pa, pb, source = dst.get_keypoints(image, image, cfg)
    assert source == "nbb" and torch.equal(pa, nbb[0]) and torch.equal(pb, nbb[1])
