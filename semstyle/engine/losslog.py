"""The loss log of a run: one row per step, written as ``losses.csv`` and drawn as ``losses.png``."""

from __future__ import annotations

import time


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
