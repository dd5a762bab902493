"""When to stop an optimisation, decided from its loss history alone.

Rule ``rel_improvement``: stop at step ``t`` (counted from 1 within a scale) once ``t >= min_steps`` and the mean
relative improvement per step over the last ``window`` steps,

    r_t = (L_{t-w} - L_t) / (w · |L_{t-w}|),

is below ``threshold``. Averaging over a window keeps one poor L-BFGS step (a line-search-free step may raise the
loss a little) from ending a run that still improves, and one lucky step from prolonging it. Rule ``none`` never
stops early: the run takes its configured steps.

Config keys (``stop.*``): ``rule`` (``none`` | ``rel_improvement``), ``threshold`` (relative improvement per step,
e.g. ``1e-3`` = 0.1 % per step), ``window`` (steps), ``min_steps`` (steps before the rule may fire). The defaults
below are those of :data:`DEFAULTS`; the measured trade-off behind the recommended values is in
docs/benchmarks.md ("Time to quality").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from omegaconf import OmegaConf

from ..conf.common import StopConfig, check_stop
from ..errors import ConfigError

DEFAULTS = asdict(StopConfig())
"""The ``stop`` section's defaults, from the config schema (:class:`semstyle.conf.common.StopConfig`)."""


def relative_improvement(losses: Sequence[float], window: int) -> float:
    """Mean relative improvement per step over the last ``window`` steps of ``losses`` (``r_t`` above).

    ``inf`` while fewer than ``window + 1`` losses are known (not enough history to judge), ``0`` when the loss
    ``window`` steps ago was exactly 0 (nothing left to improve). Positive when the loss fell.
    """
    if len(losses) <= window:
        return math.inf
    before, now = float(losses[-1 - window]), float(losses[-1])
    if before == 0:
        return 0.0
    return (before - now) / (window * abs(before))


@dataclass
class StopRule:
    """Stateful wrapper: feed it each step's loss with :meth:`update`; it answers whether to stop now.

    Call :meth:`reset` when a new scale (or phase) starts: the history and ``min_steps`` count per scale, since a
    rescale changes the loss's value.
    """

    rule: str = DEFAULTS["rule"]
    threshold: float = DEFAULTS["threshold"]
    window: int = DEFAULTS["window"]
    min_steps: int = DEFAULTS["min_steps"]
    history: list[float] = field(default_factory=list, repr=False)

    def __post_init__(self):
        check_stop(OmegaConf.create({"stop": {key: getattr(self, key) for key in DEFAULTS}}))
        self.threshold = float(self.threshold)

    @classmethod
    def from_config(cls, stop: Mapping | None) -> "StopRule":
        """From the ``stop`` section of a config (a dict or DictConfig; missing keys take :data:`DEFAULTS`)."""
        stop = {} if stop is None else stop
        if not isinstance(stop, Mapping) and not hasattr(stop, "keys"):
            raise ConfigError(f"stop: must be a mapping with rule, threshold, window, min_steps; got {stop!r}")
        unknown = sorted(set(stop.keys()) - set(DEFAULTS))
        if unknown:
            raise ConfigError(f"stop.{unknown[0]}: unknown key; valid keys are {', '.join(DEFAULTS)}")
        return cls(**{key: stop.get(key, default) for key, default in DEFAULTS.items()})

    @property
    def active(self) -> bool:
        return self.rule != "none"

    def reset(self) -> None:
        """Forget the history (a new scale or phase starts)."""
        self.history.clear()

    def should_stop(self, losses: Sequence[float]) -> bool:
        """Whether a run whose losses so far (this scale, one per step) are ``losses`` should stop now."""
        if self.rule == "none" or len(losses) < max(self.min_steps, 1):
            return False
        if not math.isfinite(float(losses[-1])):
            return False  # the optimisation loop reports non-finite losses itself
        return relative_improvement(losses, self.window) < self.threshold

    def update(self, loss: float) -> bool:
        """Record this step's loss; ``True`` when the optimisation should stop after it."""
        self.history.append(float(loss))
        return self.should_stop(self.history)
