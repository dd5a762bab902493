"""Plots: the loss curves of a run (``losses.png``)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402


def loss_curves(rows: list[dict], columns: list[str], path) -> None:
    """Per-term curves of a loss log (``rows`` of ``scale, step, term..., total, seconds``) on a log scale against
    the global step, scale boundaries marked; written as PNG to ``path``."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    terms = [c for c in columns if c not in ("scale", "step", "seconds")]
    x = list(range(len(rows)))
    for term in terms:
        y = [abs(r.get(term)) if r.get(term) else float("nan") for r in rows]
        ax.plot(x, y, label=term, lw=2.0 if term == "total" else 1.2)
    for i in range(1, len(rows)):
        if rows[i]["scale"] != rows[i - 1]["scale"]:
            ax.axvline(i, color="grey", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("step (all scales)")
    ax.set_ylabel("weighted loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
