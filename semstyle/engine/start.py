"""Starting images of an image optimisation."""

from __future__ import annotations

import torch

from ..core.image import load_image, resize


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
