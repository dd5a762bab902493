"""The event stream of a run: every step, scale boundary and checkpoint is an :class:`Event` passed to each
callback in turn. Progress bars, loss logs, frames, checkpoints, the studio's live view and user code all listen
to the same stream."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import torch

KINDS = ("run_start", "scale_start", "step", "scale_end", "checkpoint", "run_end")


@dataclass
class Event:
    """One thing that happened in a run.

    ``kind`` is one of :data:`KINDS`; ``scale`` is the 0-based index of the scale (or phase) among ``scales``;
    ``step`` counts the steps done in this scale (1-based on ``step`` events); ``loss`` is the total weighted loss
    and ``terms`` each weighted term; ``size`` is the image's ``(H, W)`` at this scale.
    """

    kind: str
    method: str
    scale: int = 0
    scales: int = 1
    size: tuple[int, int] | None = None
    step: int = 0
    steps: int = 0
    loss: float = math.nan
    terms: dict[str, float] = field(default_factory=dict)
    run_dir: Path | None = None
    label: str = ""
    tensors: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # scale_end: what a checkpoint keeps
    _image: Callable[[], torch.Tensor] | None = field(default=None, repr=False)

    def current_image(self) -> torch.Tensor | None:
        """The picture being optimised, ``(1, 3, H, W)`` in [0, 1] on the CPU; None outside a scale."""
        if self._image is None:
            return None
        with torch.no_grad():
            return self._image().detach().float().clamp(0, 1).cpu()


class Callback(Protocol):
    def __call__(self, event: Event) -> None: ...


class StopRun(Exception):
    """Raise from a callback to stop the run early: the current image becomes the result, and the run folder is
    finished as usual (``output.png``, ``losses.csv``; no ``.partial`` left)."""
