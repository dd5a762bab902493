import math

import pytest
from omegaconf import OmegaConf

from semstyle.engine.stopping import DEFAULTS, StopRule, relative_improvement
from semstyle.errors import ConfigError


def geometric(start: float, factor: float, n: int) -> list[float]:
    return [start * factor**i for i in range(n)]


def first_stop(rule: StopRule, losses) -> int | None:
    """The 1-based step after which ``rule`` stops a run with these losses (None: it runs to the end)."""
    rule.reset()
    for step, loss in enumerate(losses, 1):
        if rule.update(loss):
            return step
    return None


def test_relative_improvement_is_the_mean_per_step_drop_over_the_window():
    losses = [100.0, 90.0, 80.0, 75.0]
    assert relative_improvement(losses, 3) == pytest.approx((100 - 75) / (3 * 100))
    assert relative_improvement(losses, 1) == pytest.approx(5 / 80)
    assert relative_improvement(losses, 4) == math.inf  # not enough history
    assert relative_improvement([0.0, 0.0], 1) == 0.0
    assert relative_improvement([-10.0, -12.0], 1) == pytest.approx(0.2)  # a negative loss still improves downwards


def test_stops_where_a_geometric_decay_crosses_the_threshold():
    # L_t = 100 * 0.99^t falls by ~1 % per step for ever (r = 0.0098 over 5 steps): never below 0.5 %, always below
    # 1.5 %.
    losses = geometric(100.0, 0.99, 200)
    assert first_stop(StopRule("rel_improvement", 0.005, window=5, min_steps=0), losses) is None
    assert first_stop(StopRule("rel_improvement", 0.015, window=5, min_steps=0), losses) == 6  # first full window
    # a decay that slows down: the loss after step s is 100 / s, so r over window 1 is 1 - (s-1)/s = 1/s, below 2 %
    # first at s = 51
    slowing = [100.0 / s for s in range(1, 101)]
    step = first_stop(StopRule("rel_improvement", 0.02, window=1, min_steps=0), slowing)
    assert step == 51
    assert relative_improvement(slowing[:step], 1) < 0.02 <= relative_improvement(slowing[: step - 1], 1)


def test_min_steps_and_window_delay_the_stop():
    flat = [5.0] * 100
    assert first_stop(StopRule("rel_improvement", 1e-3, window=10, min_steps=0), flat) == 11
    assert first_stop(StopRule("rel_improvement", 1e-3, window=10, min_steps=40), flat) == 40
    assert first_stop(StopRule("rel_improvement", 1e-3, window=1, min_steps=0), flat) == 2


def test_window_smooths_one_bad_step():
    # steady 1 %/step decay with one step where the loss rises: window 1 stops there, window 10 does not.
    losses = geometric(100.0, 0.99, 60)
    losses[30] = losses[29] * 1.01
    assert first_stop(StopRule("rel_improvement", 5e-3, window=1, min_steps=0), losses) == 31
    assert first_stop(StopRule("rel_improvement", 5e-3, window=10, min_steps=0), losses) is None


def test_rule_none_never_stops_and_non_finite_losses_are_left_to_the_loop():
    assert first_stop(StopRule("none", 1.0, window=1, min_steps=0), [1.0] * 50) is None
    assert not StopRule("none").active and StopRule("rel_improvement").active
    rule = StopRule("rel_improvement", 1e-3, window=1, min_steps=0)
    assert not rule.should_stop([1.0, math.nan])


def test_reset_starts_a_new_scale():
    rule = StopRule("rel_improvement", 1e-3, window=2, min_steps=3)
    assert [rule.update(x) for x in (1.0, 1.0, 1.0)] == [False, False, True]
    rule.reset()
    assert rule.history == [] and not rule.update(1.0)


def test_from_config_reads_the_stop_section_with_defaults():
    cfg = OmegaConf.create({"stop": {"rule": "rel_improvement", "threshold": 2e-3}})
    rule = StopRule.from_config(cfg.stop)
    assert (rule.rule, rule.threshold, rule.window, rule.min_steps) == (
        "rel_improvement",
        2e-3,
        DEFAULTS["window"],
        DEFAULTS["min_steps"],
    )
    assert StopRule.from_config(None).rule == "none"
    yaml = OmegaConf.create("stop: {rule: rel_improvement, threshold: 1e-3, window: 5, min_steps: 0}")
    assert StopRule.from_config(yaml.stop).threshold == pytest.approx(1e-3)


@pytest.mark.parametrize(
    "stop, message",
    [
        ({"rule": "patience"}, r"stop\.rule: 'patience' is not one of none, rel_improvement"),
        ({"threshold": -1}, r"stop\.threshold: must be >= 0, got -1"),
        ({"threshold": "small"}, r"stop\.threshold: must be a number, got 'small'"),
        ({"window": 0}, r"stop\.window: must be >= 1, got 0"),
        ({"min_steps": 2.5}, r"stop\.min_steps: must be an integer, got 2\.5"),
        ({"windows": 3}, r"stop\.windows: unknown key"),
        ("often", r"stop: must be a mapping"),
    ],
)
def test_bad_config_is_a_one_line_config_error(stop, message):
    with pytest.raises(ConfigError, match=message) as info:
        StopRule.from_config(stop)
    assert "\n" not in str(info.value)


def _lbfgs_run(spike_at: int | None, steps: int = 40):
    """L-BFGS on an ill-conditioned quadratic; the loss measured at evaluation ``spike_at`` is thrown up 1000x."""
    import torch

    from semstyle.engine.loop import Problem, run_steps

    scales = torch.logspace(0, 3, 40)
    x = torch.ones(40, requires_grad=True)
    points, losses, after = [], [], []

    def loss():
        points.append(x.detach().clone())
        total = (scales * x**2).sum()
        total = total * 1000 if len(points) == spike_at else total
        losses.append(float(total.detach()))
        return total, {}

    run_steps(Problem([x], loss, image=lambda: x.detach()), steps, lambda *_: after.append(x.detach().clone()))
    return points, losses, after


def test_a_late_step_that_throws_the_loss_up_is_undone_and_lbfgs_restarts():
    """Step 15's loss spikes after the history (10 pairs) was built: the parameters go back to the best point so
    far and the history restarts there. Spikes in the first 10 steps, which L-BFGS makes and recovers from by
    itself, are left alone."""
    import torch

    points, losses, after = _lbfgs_run(spike_at=15)
    best = min(range(14), key=losses.__getitem__)
    assert torch.equal(after[14], points[best])  # undone: back at the best point
    assert not any(torch.equal(a, p) for a, p in zip(after[:14], points[:14]))  # ordinary steps are kept
    assert losses[-1] < 1e-3 * losses[0]
    points, losses, after = _lbfgs_run(spike_at=4)
    assert not torch.equal(after[3], points[2]) and not torch.equal(after[3], points[0])  # too early: kept


def _quartic_run(max_step: float | None, steps: int = 20):
    """L-BFGS on f(x) = Σ x⁴ + b·x from x = 0, where the curvature is 0: the curvature pair of the tiny first step
    makes the second step overshoot by far, as from a content image (docs/benchmarks.md, "L-BFGS's overshoot").
    Returns the longest change of x in each step, and f above its minimum at the end."""
    import torch

    from semstyle.engine.loop import Problem, run_steps

    b = torch.linspace(-1, 1, 64, dtype=torch.float64)
    x = torch.zeros(64, dtype=torch.float64, requires_grad=True)
    after = [x.detach().clone()]

    def f(x):
        return (x**4).sum() + (b * x).sum()

    problem = Problem([x], lambda: (f(x), {}), image=lambda: x.detach(), max_step=max_step)
    run_steps(problem, steps, lambda *_: after.append(x.detach().clone()))
    best = -torch.sign(b) * (b.abs() / 4) ** (1 / 3)  # where 4x³ + b = 0
    moves = torch.stack([(q - p).abs().max() for p, q in zip(after, after[1:])])
    return moves, float(f(after[-1]) - f(best))


def test_lbfgs_steps_longer_than_max_step_are_shortened():
    """Uncapped, the second step moves x ~400 where the minimum is ~0.6 away, and 20 steps end 10 above the minimum;
    capped at 0.25, no step is longer, and the run reaches the minimum."""
    moves, above = _quartic_run(None)
    assert moves[1] > 100 and above > 1.0, (moves[:3], above)
    moves, above = _quartic_run(0.25)
    assert moves.max() <= 0.25 + 1e-12 and moves[1] > 0.2  # the long step was shortened, not dropped
    assert above < 1e-6, above
