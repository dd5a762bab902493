"""Face landmarks as DST keypoints (optional: the ``faces`` extra).

MediaPipe's Face Mesh (468 landmarks; bundled with ``mediapipe==0.10.21``, which runs offline; later releases ship
no model) finds the same anatomical points on a photo and on a painted face, so landmark ``i`` of the content and
landmark ``i`` of the style are a correspondence by construction. Portrait mode keeps the eyes, brows, nose, mouth
and the face outline (jaw line and forehead), then spreads them out with DST's cleaning (greedy spacing, crossing
removal; :func:`semstyle.correspondence.clean.clean_points`) so that no two points sit closer than ``b`` px.

Install: ``pip install --no-deps mediapipe==0.10.21 && pip install "protobuf<5" absl-py attrs flatbuffers``
(``--no-deps``: its pinned dependencies are not needed for Face Mesh).
"""

from __future__ import annotations

import numpy as np
import torch

from ...core.image import to_pil
from ...errors import SemstyleError
from .clean import clean_points

# Face Mesh connection sets, in the order the greedy spacing prefers them (the eyes and mouth first).
FEATURES = ("LEFT_EYE", "RIGHT_EYE", "LIPS", "NOSE", "LEFT_EYEBROW", "RIGHT_EYEBROW", "FACE_OVAL")


def available() -> bool:
    """Whether MediaPipe's Face Mesh can be imported."""
    try:
        import mediapipe as mp  # noqa: F401

        return hasattr(mp, "solutions")
    except Exception:  # not installed, or a build that cannot load here
        return False


def portrait_indices() -> list[int]:
    """Landmark indices of the eyes, mouth, nose, brows and face outline, each once, in :data:`FEATURES` order."""
    from mediapipe.python.solutions import face_mesh_connections as connections

    order: list[int] = []
    for name in FEATURES:
        for i in sorted({i for edge in getattr(connections, f"FACEMESH_{name}") for i in edge}):
            if i not in order:
                order.append(i)
    return order


def face_landmarks(image: torch.Tensor) -> torch.Tensor | None:
    """The 468 Face Mesh landmarks of the most prominent face in ``image`` ``(1, 3, H, W)`` as ``(468, 2)`` (x, y)
    pixels, or None when no face is found."""
    if not available():
        raise SemstyleError(
            "keypoints=faces needs the faces extra: pip install --no-deps mediapipe==0.10.21 && "
            "pip install 'protobuf<5' absl-py attrs flatbuffers"
        )
    from mediapipe.python.solutions import face_mesh

    rgb = np.ascontiguousarray(np.asarray(to_pil(image)))
    with face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False) as mesh:
        found = mesh.process(rgb)
    if not found.multi_face_landmarks:
        return None
    h, w = rgb.shape[:2]
    marks = found.multi_face_landmarks[0].landmark
    # MediaPipe gives x, y as fractions of the width and height
    return torch.tensor([[m.x * w, m.y * h] for m in marks], dtype=torch.float32)


def face_keypoints(
    content: torch.Tensor,
    style: torch.Tensor,
    max_points: int = 80,
    b: float = 10,
    im_size: int = 256,
    landmarks=face_landmarks,
    indices: list[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Portrait-mode keypoint pairs ``(content (N, 2), style (N, 2))`` in original pixels, or None when either
    image has no detectable face. ``max_points``, ``b``, ``im_size``: DST's cleaning (80, 10 px at 256 px).

    ``landmarks(image) -> (L, 2) or None`` finds the landmarks (MediaPipe's Face Mesh by default) and ``indices``
    picks the ones kept (default :func:`portrait_indices`): another landmark source plugs in here."""
    marks_a, marks_b = landmarks(content), landmarks(style)
    if marks_a is None or marks_b is None:
        return None
    idx = torch.tensor(portrait_indices() if indices is None else indices)
    pa, pb = marks_a[idx], marks_b[idx]
    # landmarks of a face near the edge can fall just outside the frame
    for pts, img in ((pa, content), (pb, style)):
        pts[:, 0].clamp_(0, img.shape[-1] - 1)
        pts[:, 1].clamp_(0, img.shape[-2] - 1)
    pa, pb, _ = clean_points(
        pa,
        pb,
        None,
        tuple(content.shape[-2:]),
        tuple(style.shape[-2:]),
        max_num_points=max_points,
        b=b,
        im_size=im_size,
    )
    return pa, pb
