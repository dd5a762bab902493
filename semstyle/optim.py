"""The optimisation loop every method shares: optimiser factory, step loop, progress bar, loss logging."""

from __future__ import annotations

import math
import time
from typing import Callable

import torch
from tqdm.auto import tqdm

from .errors import SemstyleError, check

OPTIMIZERS = ("lbfgs", "adam", "sgd", "rmsprop")

# Learning rates that work with images in [0, 1]; L-BFGS's step is set by its curvature estimate.
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02, "sgd": 0.3, "rmsprop": 0.01}


def make_optimizer(name: str, params, lr: float | None = None) -> torch.optim.Optimizer:
    """``lbfgs`` (one iteration per ``step()``, history kept across steps), ``adam``, ``sgd`` or ``rmsprop``."""
    check(name in OPTIMIZERS, f"optimizer: {name!r} is not one of {', '.join(OPTIMIZERS)}")
    lr = DEFAULT_LR[name] if lr is None else lr
    check(lr > 0, f"lr: must be > 0, got {lr}")
    params = list(params)
    if name == "lbfgs":
        # history 10, not torch's 100: each stored pair costs two passes over the image per step (at 512 px the
        # update took 16 ms with 20 pairs, 8 % of a VGG pass; 100 pairs made a step ~15 % slower than 20), and more
        # pairs barely help: 20 instead of 10 lowered the final loss of the default Gatys run by 0.4 % (256 and
        # 512 px) and left the Monet doodle's unchanged (3 seeds)
        return torch.optim.LBFGS(params, lr=lr, max_iter=1, history_size=10, tolerance_grad=-1, tolerance_change=-1)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    return torch.optim.RMSprop(params, lr=lr)


class LossLog:
    """Rows of ``(scale, step, term..., total, seconds)``; written as ``losses.csv`` and plotted as ``losses.png``."""

    def __init__(self):
        self.rows: list[dict] = []
        self.start = time.perf_counter()

    def add(self, scale: int, step: int, total: float, terms: dict[str, float]) -> None:
        self.rows.append({"scale": scale, "step": step, **terms, "total": total,
                          "seconds": round(time.perf_counter() - self.start, 4)})

    @property
    def columns(self) -> list[str]:
        cols = ["scale", "step"]
        for row in self.rows:
            cols += [k for k in row if k not in cols and k not in ("total", "seconds")]
        return cols + ["total", "seconds"]

    def to_csv(self) -> str:
        cols = self.columns
        lines = [",".join(cols)]
        for row in self.rows:
            lines.append(",".join("" if row.get(c) is None else f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c])
                                  for c in cols))
        return "\n".join(lines) + "\n"

    def plot(self, path) -> None:
        """Per-term curves on a log scale against the global step, scale boundaries marked."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        terms = [c for c in self.columns if c not in ("scale", "step", "seconds")]
        x = list(range(len(self.rows)))
        for term in terms:
            y = [abs(r.get(term)) if r.get(term) else float("nan") for r in self.rows]
            ax.plot(x, y, label=term, lw=2.0 if term == "total" else 1.2)
        for i in range(1, len(self.rows)):
            if self.rows[i]["scale"] != self.rows[i - 1]["scale"]:
                ax.axvline(i, color="grey", ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_xlabel("step (all scales)")
        ax.set_ylabel("weighted loss")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, format="png")
        plt.close(fig)


def optimize(
    params,
    objective: Callable[[], tuple[torch.Tensor, dict[str, float]]],
    steps: int,
    optimizer: str = "lbfgs",
    lr: float | None = None,
    project: Callable[[], None] | None = None,
    log: LossLog | None = None,
    scale: int = 0,
    on_step: Callable[[int], None] | None = None,
    desc: str = "",
    progress: bool = True,
) -> tuple[float, dict[str, float]]:
    """Minimise ``objective()`` over ``params`` for ``steps`` steps.

    Args:
        params: tensors with ``requires_grad``.
        objective: returns ``(total, {term: value})``.
        project: called after each step, e.g. to clamp pixels into [0, 1].
        log: receives one row per step.
        on_step: called with the step number after each step (frames, checkpoints).

    Returns the last ``(total, terms)``. A non-finite loss raises :class:`SemstyleError` naming the step.
    """
    params = list(params)
    opt = make_optimizer(optimizer, params, lr)
    last: list = [math.nan, {}]

    def closure():
        opt.zero_grad(set_to_none=True)
        total, terms = objective()
        total.backward()
        last[:] = [float(total.detach()), terms]
        return total

    bar = tqdm(range(steps), desc=desc or f"scale {scale}", disable=not progress, leave=False, dynamic_ncols=True)
    for step in bar:
        opt.step(closure)
        total, terms = last
        if not math.isfinite(total):
            raise SemstyleError(
                f"loss became {total} at step {step} of scale {scale}: lower the learning rate or the loss weights"
            )
        if project is not None:
            with torch.no_grad():
                project()
        if log is not None:
            log.add(scale, step, total, terms)
        bar.set_postfix({"loss": f"{total:.4g}", **{k: f"{v:.3g}" for k, v in terms.items()}}, refresh=False)
        if on_step is not None:
            on_step(step)
    bar.close()
    return last[0], last[1]
