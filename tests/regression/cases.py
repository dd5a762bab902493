"""The regression runs whose loss curves were recorded before the engine restructure (issue 15).

Each case is a config and overrides, small enough to rerun in the test suite; ``record.py`` writes the curves
(``<name>.csv``: scale, step, each weighted term, total) and ``test_regression.py`` reruns and compares them.
"""

from __future__ import annotations

COMMON = ["precision=fp32", "progress=false", "device=cpu"]

CASES = {
    "gatys": ("configs/default.yaml", ["size=128", "steps=30", "stop.rule=none"], False),
    "doodle_monet": ("configs/doodle/monet.yaml", ["size=96", "steps=10", "coarse_steps=10", "phases=2"], True),
    # 256 output and 1000 style samples, not 1024 and 5000: the 2179-channel moment term's products scale with them
    "strotss": (
        "configs/strotss/default.yaml",
        ["size=64", "scales=[32]", "steps=15", "samples=256", "style_samples=1000"],
        False,
    ),
    # tv_weight=0: the curve predates the Gram base's image TV (issue 16), which adds a term to the objective
    "dst_gatys": (
        "configs/dst/gatys.yaml",
        ["size=96", "scales=[64]", "steps=15", "coarse_steps=15", "tv_weight=0"],
        True,
    ),
}
"""name -> (config, overrides, needs ../shared/data)"""
