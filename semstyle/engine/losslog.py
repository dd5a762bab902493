"""The loss log of a run: one row per step, written as ``losses.csv`` and drawn as ``losses.png``."""

from __future__ import annotations

import time

from ..viz.plots import loss_curves


class LossLog:
    """Rows of ``(scale, step, term..., total, seconds)``; written as ``losses.csv`` and plotted as ``losses.png``."""

    def __init__(self):
        self.rows: list[dict] = []
        self.start = time.perf_counter()

    def add(self, scale: int, step: int, total: float, terms: dict[str, float]) -> None:
        self.rows.append(
            {
                "scale": scale,
                "step": step,
                **terms,
                "total": total,
                "seconds": round(time.perf_counter() - self.start, 4),
            }
        )

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
            lines.append(
                ",".join(
                    "" if row.get(c) is None else f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c])
                    for c in cols
                )
            )
        return "\n".join(lines) + "\n"

    def plot(self, path) -> None:
        """``losses.png``: see :func:`semstyle.viz.plots.loss_curves`."""
        loss_curves(self.rows, self.columns, path)
