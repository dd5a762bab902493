"""Pieces of the optimisation schedule shared by the image-optimising methods: initial image, coarse-to-fine
loop with per-scale checkpoints, intermediate frames."""

from __future__ import annotations

from typing import Callable

import torch

from .image import load_image, resize
from .runs import RunDir

INITS = ("noise", "content", "style")


def init_image(init: str, content: torch.Tensor | None, style: torch.Tensor | None, shape, seed: int) -> torch.Tensor:
    """The starting image of shape ``shape = (H, W)``: ``noise`` (uniform, seeded), ``content``, ``style`` or a file."""
    h, w = shape
    if init == "noise":
        gen = torch.Generator().manual_seed(int(seed))
        return torch.rand(1, 3, h, w, generator=gen)
    if init in ("content", "style"):
        source = content if init == "content" else style
        if source is None:
            raise ValueError(f"init: {init} needs a {init} image")
        return resize(source, (h, w)).clone()
    return load_image(init, (h, w), what="init image")


def coarse_to_fine(
    sizes: list[int],
    scale_fn: Callable[[int, int, torch.Tensor | None], torch.Tensor],
    run: RunDir | None = None,
    state: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Run ``scale_fn(index, long_side, previous_image_or_None) -> image`` for each size, coarse to fine.

    With a run folder, each finished scale is checkpointed (the image and any tensors in ``state``, which
    ``scale_fn`` may update in place); a resumed run skips the scales already done and restores ``state``.
    """
    image, start = None, 0
    saved = run.load_checkpoint() if run is not None else None
    if saved is not None:
        tensors, meta = saved
        image, start = tensors.pop("image"), int(meta["scale"]) + 1
        if state is not None:
            state.update(tensors)
    for index, size in enumerate(sizes):
        if index < start:
            continue
        image = scale_fn(index, size, image)
        if run is not None:
            run.save_checkpoint({"image": image, **(state or {})}, scale=index)
    return image


def frame_saver(run: RunDir | None, every: int, scale: int, image: torch.Tensor) -> Callable[[int], None] | None:
    """An ``on_step`` callback writing ``frames/s<scale>_<step>.png`` every ``every`` steps (None when off)."""
    if run is None or every <= 0:
        return None

    def save(step: int) -> None:
        if (step + 1) % every == 0:
            run.save_image(f"frames/s{scale}_{step + 1:05d}.png", image)

    return save
