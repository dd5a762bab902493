"""Pruning NBB pairs: border removal, one pair per point of A, k-means selection (NBB's ``top_k_in_clusters``).

Points are ``(N, 2)`` float tensors (x, y); every function returns an index tensor into the inputs so callers
can apply it to points and activations alike.
"""

from __future__ import annotations

import numpy as np
import torch


def inside_border(points: torch.Tensor, size: tuple[int, int], border: float) -> torch.Tensor:
    """Boolean mask of points at least ``border`` px inside an image of ``size`` = (H, W).

    Same rule as NBB's ``remove_border_correspondence``: drop ``x < border`` or ``x > W - border`` (and y).
    """
    h, w = size
    x, y = points[:, 0], points[:, 1]
    return (x >= border) & (x <= w - border) & (y >= border) & (y <= h - border)


def best_per_group(groups: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
    """Index of the highest-activation item of each group (integer labels ``(N,)``), by decreasing activation."""
    if len(groups) == 0:
        return torch.zeros(0, dtype=torch.long)
    order = torch.argsort(activation, descending=True, stable=True)
    _, first = np.unique(groups[order].cpu().numpy(), return_index=True)
    keep = order[torch.from_numpy(first).to(order.device)]
    return keep[torch.argsort(activation[keep], descending=True, stable=True)]


def unique_points(points: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
    """One pair per distinct point (NBB's ``make_correspondence_unique``), keeping the highest activation."""
    if len(points) == 0:
        return torch.zeros(0, dtype=torch.long)
    _, groups = torch.unique(points, dim=0, return_inverse=True)
    return best_per_group(groups, activation)


def kmeans_select(
    points_a: torch.Tensor, points_b: torch.Tensor, activation: torch.Tensor, k: int, seed: int = 0
) -> torch.Tensor:
    """At most ``k`` pairs: k-means on (xA, yA, xB, yB), then the highest-activation pair of each cluster.

    NBB (Aberman et al. 2018, §5 and ``top_k_in_clusters``) uses this to spread the final ``k_final`` points
    over the image. Fewer than ``k`` pairs are all kept. Returns indices sorted by decreasing activation.
    """
    n = len(activation)
    if n <= k:
        return torch.argsort(activation, descending=True, stable=True)
    data = torch.cat([points_a, points_b], 1).double().cpu().numpy()
    # imported here, not at the top: sklearn takes ~1.5 s to load, and only maps and keypoint selection
    # cluster; every other run (and each sweep worker, each CLI call) starts without it
    from sklearn.cluster import KMeans

    labels = KMeans(n_clusters=k, random_state=seed, n_init="auto").fit(data).labels_
    return best_per_group(torch.from_numpy(labels.astype(np.int64)), activation.cpu())
