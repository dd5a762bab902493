"""Plots: the loss curves of a run (``losses.png``), the overlay of many runs' curves (a sweep report) and the
progress of a weight search (``search.png``)."""

from __future__ import annotations

import functools


@functools.cache
def _pyplot():
    """matplotlib's pyplot on the Agg backend (files only, never a window), imported on the first plot: it costs
    0.4-0.55 s, which every ``semstyle`` process would otherwise pay at start-up, including one that ends in a
    config error or is stopped before its first plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curves(rows: list[dict], columns: list[str], path) -> None:
    """Per-term curves of a loss log (``rows`` of ``scale, step, term..., total, seconds``) on a log scale against
    the global step, scale boundaries marked; written as PNG to ``path``."""
    plt = _pyplot()
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


def overlay_curves(series: dict[str, tuple[list[float], list[float]]], path, ylabel: str = "total loss") -> None:
    """Several runs' curves in one plot: ``series`` maps a label to ``(x, y)``; log scale; PNG to ``path``.

    The loss-curve overlay of a sweep report (:mod:`semstyle.experiments.report`).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for label, (x, y) in series.items():
        ax.plot(x, [abs(v) if v else float("nan") for v in y], label=label, lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("step (all scales)")
    ax.set_ylabel(ylabel)
    if series:
        ax.legend(fontsize=7, loc="upper right", ncol=max(1, len(series) // 12))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def search_progress(feasible, infeasible, maximize: bool, title: str, ylabel: str, path) -> None:
    """A search's trials: ``(trial, objective)`` pairs meeting the constraints (dots, with the best so far as a
    step line) and missing them (crosses); log scale when the objectives span over 100x; PNG to ``path``."""
    sign = -1.0 if maximize else 1.0
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    if feasible:
        ax.plot(*zip(*feasible), "o", color="tab:blue", label="meets the constraints")
        best, steps = None, []
        for n, v in feasible:
            best = v if best is None or sign * v < sign * best else best
            steps.append((n, best))
        last = max(n for n, _ in feasible + infeasible)
        xs, ys = zip(*(steps + [(last, steps[-1][1])]))
        ax.step(xs, ys, where="post", color="tab:green", label="best so far")
    if infeasible:
        ax.plot(*zip(*infeasible), "x", color="tab:red", label="misses a constraint")
    values = [v for _, v in feasible + infeasible]
    if min(values) > 0 and max(values) / min(values) > 100:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
