"""Loss terms: pure functions on tensors, each with a thin module that caches its target.

Every module has ``layers`` (the encoder layers it reads; empty for image-space terms) and
``forward(features) -> scalar``, where ``features`` maps layer names to ``(B, C, h, w)`` tensors and ``"image"``
to the ``(B, 3, H, W)`` image itself. :class:`semstyle.objective.Objective` composes them.
"""

from .content import ContentLoss, content_loss
from .gram import GramLoss, gram_loss, gram_matrix
from .tv import TVLoss, tv_loss

__all__ = [
    "ContentLoss",
    "content_loss",
    "GramLoss",
    "gram_loss",
    "gram_matrix",
    "TVLoss",
    "tv_loss",
]
