"""Loss terms: pure functions on tensors, each with a thin module that caches its target.

Every module follows one contract (:class:`semstyle.losses.base.Loss`): ``layers`` (the encoder layers it reads;
empty for image-space terms), ``set_target(features, masks=None)``, ``set_input_masks(masks)`` for region-wise
losses, and ``forward(features) -> scalar``, where ``features`` maps layer names to ``(B, C, h, w)`` tensors and
``"image"`` to the ``(B, 3, H, W)`` image itself; a batch scores the mean of its images' losses.
:class:`semstyle.engine.Objective` composes them.

| module | loss | used by |
|---|---|---|
| ``content`` | feature MSE (Gatys eq. 1) | gatys, doodle, cnnmrf, dst |
| ``gram`` | Gram style loss (Gatys eqs. 3-5) | gatys, reconstruct, dst (gram base), gram_masked |
| ``gram_masked`` | one Gram per semantic region (fast-neural-doodle) | doodle |
| ``mrf`` | patch MRF with NCC matching, optional semantic channels (CNNMRF, neural doodle) | doodle, cnnmrf |
| ``laplacian`` | Laplacian loss (Li et al. 2017) | gatys |
| ``tv`` | total variation | gatys, doodle, cnnmrf, dst |
| ``flow_tv`` | DST's four-direction total variation of a warp's flow (Kim et al. 2020, eq. 5) | dst |
| ``strotss`` | relaxed EMD, moments, colour, self-similarity (STROTSS) | strotss, dst (strotss base) |
"""

from .content import ContentLoss, content_loss
from .flow_tv import flow_tv
from .gram import GramLoss, gram_loss, gram_matrix
from .gram_masked import MaskedGramLoss, masked_grams
from .laplacian import LaplacianLoss, laplacian, laplacian_loss
from .mrf import MRFLoss, mrf_loss
from .strotss import (
    SamplePoints,
    SelfSimilarityLoss,
    StrotssStyleLoss,
    color_emd,
    moment_loss,
    relaxed_emd,
    self_similarity_loss,
)
from .tv import TVLoss, tv_loss

__all__ = [
    "ContentLoss",
    "content_loss",
    "GramLoss",
    "gram_loss",
    "gram_matrix",
    "MaskedGramLoss",
    "masked_grams",
    "LaplacianLoss",
    "laplacian",
    "laplacian_loss",
    "MRFLoss",
    "mrf_loss",
    "SamplePoints",
    "SelfSimilarityLoss",
    "StrotssStyleLoss",
    "relaxed_emd",
    "moment_loss",
    "color_emd",
    "self_similarity_loss",
    "TVLoss",
    "tv_loss",
    "flow_tv",
]
