"""Did an optimisation diverge? Decided from its loss history and the image it produced.

A run whose learning rate is far too large does not stop with an error: the loss climbs (``optimizer=adam
lr=1e9`` at 64 px went from 1955 to 123,815 in 30 steps) and the projection onto [0, 1] pins most pixels at 0 or 1,
leaving an image of the 8 corner colours of the RGB cube. Both symptoms are checked per scale; non-finite losses
are already stopped by :func:`semstyle.optim.optimize`.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

# A minimisation whose last loss is 3x its first has failed: every bundled config ends each scale far below its
# starting loss (tests/engine/test_run_safety.py checks gatys, strotss, doodle and dst at 64 px).
LOSS_FACTOR = 3.0
# A value rounds to 0 or 255 in the saved PNG.
EDGE = 0.5 / 255
# "Most pixels saturated": at least half of all channel values at 0 or 1, with each end taking at least 5 %
# (a result pinned at one end only, e.g. the white paper of a line drawing, is a look, not a failure), and at least
# 25 points more than in the image the scale started from (a photo with blown-out sky starts saturated).
SATURATED = 0.5
EACH_END = 0.05
MORE_THAN_START = 0.25


def saturated_fraction(image: torch.Tensor) -> tuple[float, float]:
    """Fractions of the channel values of ``image`` (any shape, nominally in [0, 1]) at or below 0 and at or above 1,
    counting values that round to 0 or 255 in 8 bits."""
    x = image.detach().float()
    n = max(1, x.numel())
    return float((x <= EDGE).sum()) / n, float((x >= 1 - EDGE).sum()) / n


def loss_diverged(losses: Sequence[float], factor: float = LOSS_FACTOR) -> str | None:
    """Why the losses of one optimisation (in step order) show divergence, or None when they do not."""
    if len(losses) < 2:
        return None
    first, last = float(losses[0]), float(losses[-1])
    if math.isfinite(first) and first > 0 and last > factor * first:
        return f"the loss rose from {first:.4g} to {last:.4g} ({last / first:.3g}x)"
    return None


def image_saturated(image: torch.Tensor, start: torch.Tensor | None = None) -> str | None:
    """Why ``image`` ``(B, C, H, W)`` looks diverged (most values pinned at both 0 and 1, unlike ``start``), or None."""
    low, high = saturated_fraction(image)
    before = sum(saturated_fraction(start)) if start is not None else 0.0
    now = low + high
    if now >= SATURATED and low >= EACH_END and high >= EACH_END and now >= before + MORE_THAN_START:
        where = f" (the start had {before:.0%})" if start is not None else ""
        return f"{now:.0%} of the pixel values are saturated at 0 or 1{where}"
    return None


def diagnose(
    losses: Sequence[float], image: torch.Tensor | None = None, start: torch.Tensor | None = None
) -> str | None:
    """All reasons to call one optimisation diverged, joined with ``; ``, or None."""
    reasons = [loss_diverged(losses)]
    if image is not None:
        reasons.append(image_saturated(image, start))
    reasons = [r for r in reasons if r]
    return "; ".join(reasons) if reasons else None
