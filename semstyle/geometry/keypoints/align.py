"""Least-squares similarity alignment of 2-D point sets (Umeyama 1991).

S. Umeyama, "Least-squares estimation of transformation parameters between two point patterns", TPAMI 13(4),
1991: the rotation, translation (and scale) minimising ``sum_i |dst_i - (s R src_i + t)|^2``, with the
reflection guard of his Lemma. DST (Kim et al. 2020) uses it to bring the style keypoints into the content frame.
"""

from __future__ import annotations

import torch

from ...errors import SemstyleError


def umeyama(src: torch.Tensor, dst: torch.Tensor, with_scale: bool = True):
    """Similarity transform ``dst ~ scale * R @ src + t`` for point sets ``(N, 2)`` (x, y).

    Returns ``(scale: float, R: (2, 2), t: (2,))`` as float32 tensors on ``src``'s device (``R`` is a proper
    rotation, det +1). With fewer than two distinct source points only the translation is estimated.
    """
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) == 0:
        raise SemstyleError(
            f"umeyama: need two (N, 2) point sets with N >= 1, got {tuple(src.shape)} and {tuple(dst.shape)}"
        )
    s64, d64 = src.double(), dst.double()
    mu_s, mu_d = s64.mean(0), d64.mean(0)
    sc, dc = s64 - mu_s, d64 - mu_d
    var_s = sc.pow(2).sum(1).mean()
    eye = torch.eye(2, dtype=torch.float64, device=src.device)
    if var_s <= 1e-12:  # a single (repeated) point: rotation and scale are undetermined
        scale, rot = torch.tensor(1.0, dtype=torch.float64), eye
    else:
        cov = dc.T @ sc / len(src)
        u, sig, vt = torch.linalg.svd(cov)
        d = eye.clone()
        if torch.det(u) * torch.det(vt) < 0:  # reflection: flip the smallest singular direction
            d[1, 1] = -1
        rot = u @ d @ vt
        scale = (sig * d.diagonal()).sum() / var_s if with_scale else torch.tensor(1.0, dtype=torch.float64)
    t = mu_d - scale * rot @ mu_s
    return float(scale), rot.float(), t.float()


def apply_similarity(points: torch.Tensor, scale: float, rot: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``scale * R @ p + t`` for each row ``p`` of ``points`` ``(N, 2)``."""
    return scale * points.float() @ rot.T.to(points.device) + t.to(points.device)


def similarity_align(src: torch.Tensor, dst: torch.Tensor, fit: str = "dst_to_src") -> torch.Tensor:
    """Map ``src`` points ``(N, 2)`` into ``dst``'s frame by a least-squares similarity transform.

    ``fit="dst_to_src"`` (default, DST's convention in ``cleanpoints.py`` and ``utils_keypoints.py``): fit
    ``T = umeyama(dst, src)`` and apply ``T^-1`` to ``src``; ``fit="src_to_dst"``: fit ``umeyama(src, dst)`` and
    apply it. Both are exact for an exact similarity; they differ slightly in scale for noisy points.
    """
    if fit == "src_to_dst":
        return apply_similarity(src, *umeyama(src, dst))
    if fit != "dst_to_src":
        raise SemstyleError(f"similarity_align: fit must be 'dst_to_src' or 'src_to_dst', got {fit!r}")
    scale, rot, t = umeyama(dst, src)
    return (src.float() - t.to(src.device)) @ rot.to(src.device) / scale  # inverse: R^T (p - t) / s
