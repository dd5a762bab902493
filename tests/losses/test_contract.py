"""The one loss contract (semstyle/losses/base.py): targets and region masks set the same way for every loss, masks
pooled once per layer size by RegionMasks, and a batch of images scored as the mean of its images' losses."""

import pytest
import torch

from semstyle.core.semantic import RegionMasks
from semstyle.errors import SemstyleError
from semstyle.losses import ContentLoss, GramLoss, LaplacianLoss, MaskedGramLoss, MRFLoss, TVLoss
from semstyle.losses.base import Loss
from semstyle.losses.strotss import SamplePoints, SelfSimilarityLoss, StrotssStyleLoss

LAYER = "relu3_1"


def _features(seed, batch=1, channels=6, size=(10, 12)):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, *size, generator=gen)


def _masks(batch=1, size=(20, 24), shift=0):
    masks = torch.zeros(batch, 2, *size)
    masks[:, 0, :, : size[1] // 2 + shift] = 1
    masks[:, 1] = 1 - masks[:, 0]
    return masks


def test_every_loss_follows_the_contract():
    for loss in (
        ContentLoss([LAYER]),
        GramLoss([LAYER]),
        TVLoss(),
        LaplacianLoss(),
        MaskedGramLoss([LAYER]),
        MRFLoss([LAYER]),
    ):
        assert isinstance(loss, Loss)
        assert callable(loss.set_target) and callable(loss.set_input_masks)


@pytest.mark.parametrize(
    "loss", [ContentLoss([LAYER]), GramLoss([LAYER]), LaplacianLoss()], ids=lambda loss: type(loss).__name__
)
def test_a_loss_that_is_not_region_wise_refuses_masks_in_one_line(loss):
    features = {LAYER: _features(0), "image": torch.rand(1, 3, 40, 48)}
    with pytest.raises(SemstyleError, match="does not work region by region") as info:
        loss.set_target(features, RegionMasks(_masks()))
    assert "\n" not in str(info.value)
    with pytest.raises(SemstyleError, match="does not work region by region"):
        loss.set_input_masks(RegionMasks(_masks()))


def test_region_masks_are_pooled_once_per_size_and_shared():
    masks = RegionMasks(_masks())
    small = masks.at((10, 12))
    assert small is masks.at((10, 12))  # the second loss (or layer) at this size gets the same tensor
    assert small.shape == (1, 2, 10, 12) and torch.allclose(small.sum(1), torch.ones(1, 10, 12))
    assert masks.at((20, 24)) is masks.masks and masks.count == 2


@pytest.mark.parametrize(
    "make",
    [
        lambda: ContentLoss([LAYER]),
        lambda: GramLoss([LAYER]),
        lambda: MaskedGramLoss([LAYER]),
        lambda: MRFLoss([LAYER], semantic_weight=10.0),
    ],
    ids=["content", "gram", "masked_gram", "mrf"],
)
def test_a_batch_scores_the_mean_of_its_images(make):
    """Two images in one batch against one target: the mean of their single-image losses, with gradients for both
    (feed-forward training stylises batches)."""
    target = {LAYER: _features(1)}
    batch = _features(2, batch=2).requires_grad_(True)
    region_wise = make().region_wise
    target_masks = RegionMasks(_masks()) if region_wise else None
    input_masks = RegionMasks(_masks(2, shift=3)) if region_wise else None

    def scored(images, masks):
        loss = make()
        loss.set_target(target, target_masks)
        if region_wise:
            loss.set_input_masks(masks)
        return loss({LAYER: images})

    together = scored(batch, input_masks)
    one_by_one = [
        scored(batch[b : b + 1], RegionMasks(input_masks.masks[b : b + 1]) if region_wise else None) for b in (0, 1)
    ]
    assert together.item() == pytest.approx(sum(v.item() for v in one_by_one) / 2, rel=1e-5)
    assert one_by_one[0].item() != pytest.approx(one_by_one[1].item(), rel=1e-3)  # the two images differ
    together.backward()
    assert batch.grad[0].abs().sum() > 0 and batch.grad[1].abs().sum() > 0


def test_the_strotss_terms_score_a_batch_as_the_mean_of_its_images():
    """The STROTSS terms read every image of a batch at the same points; the batch's value is their mean."""
    gen = torch.Generator().manual_seed(5)

    def features(batch):
        return {
            "relu1_1": torch.rand(batch, 4, 8, 8, generator=gen),
            "image": torch.rand(batch, 3, 16, 16, generator=gen),
        }

    points = SamplePoints(24, seed=0)
    points.set_regions((16, 16))
    content, style = SelfSimilarityLoss(points, ("relu1_1",)), StrotssStyleLoss(points, ("relu1_1",), style_samples=40)
    content.set_target(features(1))
    style.set_target(features(1))
    points.resample()
    batch = features(2)
    singles = [{name: f[b : b + 1] for name, f in batch.items()} for b in (0, 1)]
    assert content(batch).item() == pytest.approx((content(singles[0]) + content(singles[1])).item() / 2, rel=1e-5)
    together, apart = style(batch), [style(one) for one in singles]
    for term in ("remd", "moment", "color"):
        assert together[term].item() == pytest.approx((apart[0][term] + apart[1][term]).item() / 2, rel=1e-5)
    assert apart[0]["remd"].item() != pytest.approx(apart[1]["remd"].item(), rel=1e-3)
