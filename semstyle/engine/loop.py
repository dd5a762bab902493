"""One scale of optimisation: a :class:`Problem` (parameters, loss, picture) and the step loop that minimises it.

Image optimisation (the pixels, a Laplacian pyramid, DST's image and warp) and model optimisation share this loop:
a problem only says what its parameters are and how to compute the loss.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..conf.common import LBFGS_HISTORY
from ..conf.vocab import OPTIMIZERS
from ..errors import SemstyleError, check

# Learning rates that work with images in [0, 1]; L-BFGS's step is set by its curvature estimate.
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02, "sgd": 0.3, "rmsprop": 0.01}

# The largest change of any pixel in one L-BFGS step, in [0, 1] units. Without a line search, L-BFGS takes its
# second step from a curvature pair measured over its tiny first one: from the content image that step moved pixels
# by up to 8x the whole range (Gatys, 256 px), the clamp left an image pinned at 0 and 1, and the loss took 4-5 steps
# to come back below its start. Ordinary Gatys steps there moved pixels by at most 0.4; the doodles' second steps by
# up to 1.0, usefully. At 0.5 the Gatys regression run (128 px, 30 steps) ends 29 % lower, and the doodles within
# 0.1 % (0.25 left the Monet doodle 2 % higher; docs/benchmarks.md, "L-BFGS's overshoot").
LBFGS_MAX_PIXEL_STEP = 0.5


def _without_dynamo(cls: type) -> type:
    """``cls``, a torch optimiser, without the wrappers that import ``torch._dynamo`` on their first call: 1.2-1.7 s
    in a fresh process (with sympy), a tenth of a small preview run and more than the demo's set-up. They exist for
    ``torch.compile`` (to keep it out of the bookkeeping methods, and to break its graph around ``step()``), which
    the engine never uses. The plain functions are the wrappers' ``__wrapped__``; each is unwrapped only where it
    is that wrapper (so a torch without it keeps its own methods), and ``step()`` keeps the grad mode it set."""
    from torch import _compile
    from torch.optim import optimizer

    def plain(method, source: str, name: str):
        code = getattr(method, "__code__", None)
        wrapped = getattr(method, "__wrapped__", None)
        found = code is not None and wrapped is not None and (code.co_filename, code.co_name) == (source, name)
        return wrapped if found else None

    methods = {}
    for name in ("add_param_group", "zero_grad", "state_dict", "load_state_dict"):
        function = plain(getattr(torch.optim.Optimizer, name), _compile.__file__, "inner")
        if function is not None:
            methods[name] = function
    step = plain(cls.step, optimizer.__file__, "_use_grad")  # Adam, SGD, RMSprop; L-BFGS's is under no_grad
    if step is not None:

        @functools.wraps(step)
        def step_in_grad_mode(self, *args, **kwargs):
            with torch.set_grad_enabled(self.defaults["differentiable"]):
                return step(self, *args, **kwargs)

        methods["step"] = step_in_grad_mode
    return type(cls.__name__, (cls,), {"__module__": __name__, "__doc__": cls.__doc__, **methods})


_OPTIMIZER_CLASSES = {
    name: _without_dynamo(cls)
    for name, cls in (
        ("lbfgs", torch.optim.LBFGS),
        ("adam", torch.optim.Adam),
        ("sgd", torch.optim.SGD),
        ("rmsprop", torch.optim.RMSprop),
    )
}


def make_optimizer(name: str, params, lr: float | None = None, history: int | None = None) -> torch.optim.Optimizer:
    """``lbfgs`` (one iteration per ``step()``, ``history`` curvature pairs kept across steps, default
    :data:`LBFGS_HISTORY`), ``adam``, ``sgd`` or ``rmsprop``.

    ``params`` are tensors or parameter groups (dicts with their own ``lr``, ``momentum``, ...).
    """
    check(name in OPTIMIZERS, f"optimizer: {name!r} is not one of {', '.join(OPTIMIZERS)}")
    lr = DEFAULT_LR[name] if lr is None else lr
    check(lr > 0, f"lr: must be > 0, got {lr}")
    params = list(params)
    if name == "lbfgs":
        history = LBFGS_HISTORY if history is None else history
        options = dict(max_iter=1, history_size=history, tolerance_grad=-1, tolerance_change=-1)
        return _OPTIMIZER_CLASSES[name](params, lr=lr, **options)
    return _OPTIMIZER_CLASSES[name](params, lr=lr)


@dataclass
class Problem:
    """What one scale optimises.

    Args:
        params: tensors with ``requires_grad``, or parameter groups for :func:`make_optimizer`.
        loss: returns ``(total, {term: weighted value})``; ``total`` has a gradient.
        image: the current picture ``(1, 3, H, W)`` (for frames, events and the next scale).
        result: what the scale hands on when it ends (default: ``image()`` detached, on the CPU); it may also
            update the method's state (DST's θ).
        project: called after each step under ``no_grad``, e.g. to clamp pixels into [0, 1].
        label: the progress bar's description.
        max_step: the largest change of any parameter in one L-BFGS step; a longer step is shortened along its
            direction (None: no limit; :func:`pixel_problem`: :data:`LBFGS_MAX_PIXEL_STEP`).
    """

    params: list
    loss: Callable[[], tuple[torch.Tensor, dict[str, float]]]
    image: Callable[[], torch.Tensor]
    optimizer: str = "lbfgs"
    lr: float | None = None
    project: Callable[[], None] | None = None
    result: Callable[[], torch.Tensor] | None = None
    label: str = ""
    max_step: float | None = None

    def finish(self) -> torch.Tensor:
        if self.result is not None:
            return self.result()
        with torch.no_grad():
            return self.image().detach().cpu()


def pixel_problem(
    image: torch.Tensor,
    loss,
    optimizer: str,
    lr: float | None,
    label: str,
    picture=None,
    result=None,
    clamp: bool = True,
) -> Problem:
    """A :class:`Problem` over the pixels of ``image`` ``(1, C, H, W)`` (a leaf with ``requires_grad``), clamped to
    [0, 1] after each step unless ``clamp`` is false, L-BFGS's steps no longer than :data:`LBFGS_MAX_PIXEL_STEP`;
    ``picture`` (default: the image) is what frames and events show."""
    return Problem(
        [image],
        loss,
        image=picture or (lambda: image.detach()),
        optimizer=optimizer,
        lr=lr,
        project=(lambda: image.clamp_(0, 1)) if clamp else None,
        result=result or (lambda: image.detach().cpu()),
        label=label,
        max_step=LBFGS_MAX_PIXEL_STEP,
    )


class LbfgsSpikeGuard:
    """Shortens L-BFGS steps longer than ``max_step``, and undoes a step that threw the loss up once the history was
    built, restarting from the best point.

    L-BFGS without a line search (lr 1, as neural-style and Gatys-style codes run it) trusts its curvature pairs.
    Its first curvature steps can overshoot by far (:data:`LBFGS_MAX_PIXEL_STEP`): a step that changes a parameter
    by more than ``max_step`` is shortened along its direction, and L-BFGS's step length ``t`` with it, so that its
    next curvature pair is measured over the step as taken. Later, clamping the pixels after each step moves the
    image where the pairs did not go, and a step can throw the loss up 3-25x; recovering took 50-100 steps at 512 px
    (docs/benchmarks.md, the neural-style-pt race). When such a step's loss exceeds ``factor`` times the best of
    this scale, after the first ``history_size`` steps of each (re)start, the parameters go back to where that best
    was measured and the history is cleared.
    """

    def __init__(self, optimizer: torch.optim.LBFGS, factor: float = 2.0, max_step: float | None = None):
        self.optimizer, self.factor, self.max_step = optimizer, factor, max_step
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.settle = int(optimizer.defaults["history_size"])
        self.best, self.best_params, self.here, self.since_start = math.inf, None, None, 0

    def before_step(self) -> None:
        # the point the coming step's loss is measured at (the closure runs before the update)
        self.here = [p.detach().clone() for p in self.params]

    def after_step(self, loss: float) -> None:
        self.since_start += 1
        if loss < self.best:
            self.best, self.best_params = loss, self.here
        elif loss > self.factor * self.best and self.since_start > self.settle:
            with torch.no_grad():
                for p, saved in zip(self.params, self.best_params):
                    p.copy_(saved)
            self.optimizer.state.clear()
            self.since_start = 0
            return
        if self.max_step is not None:
            self._shorten()

    @torch.no_grad()
    def _shorten(self) -> None:
        longest = max(float((p - h).abs().max()) for p, h in zip(self.params, self.here))
        if longest <= self.max_step:
            return
        factor = self.max_step / longest
        for p, h in zip(self.params, self.here):
            p.sub_(h).mul_(factor).add_(h)
        state = self.optimizer.state[self.params[0]]  # where torch's LBFGS keeps its state
        state["t"] = state["t"] * factor


def run_steps(
    problem: Problem,
    steps: int,
    on_step: Callable[[int, float, dict[str, float]], bool | None],
    where: str = "",
    optimizer: torch.optim.Optimizer | None = None,
    history: int | None = None,
) -> tuple[float, dict[str, float]]:
    """Minimise ``problem.loss()`` for up to ``steps`` steps, calling ``on_step(step, total, terms)`` after each;
    a true answer ends the loop early (the stopping rule).

    ``optimizer`` lets a resumed model training continue with the optimiser state it saved; by default a new one
    is made from ``problem.optimizer`` and ``problem.lr``, keeping ``history`` curvature pairs if it is L-BFGS
    (None: :data:`LBFGS_HISTORY`).

    A non-finite loss raises :class:`SemstyleError` naming the step. Returns the last ``(total, terms)``.
    """
    params = list(problem.params)
    opt = optimizer if optimizer is not None else make_optimizer(problem.optimizer, params, problem.lr, history)
    last: list = [math.nan, {}]

    def closure():
        opt.zero_grad(set_to_none=True)
        total, terms = problem.loss()
        total.backward()
        last[:] = [float(total.detach()), terms]
        return total

    guard = LbfgsSpikeGuard(opt, max_step=problem.max_step) if isinstance(opt, torch.optim.LBFGS) else None
    for step in range(steps):
        if guard is not None:
            guard.before_step()
        opt.step(closure)
        total, terms = last
        if not math.isfinite(total):
            raise SemstyleError(
                f"loss became {total} at step {step}{where}: lower the learning rate or the loss weights"
            )
        if guard is not None:
            guard.after_step(total)
        if problem.project is not None:
            with torch.no_grad():
                problem.project()
        if on_step(step + 1, total, terms):
            break
    return last[0], last[1]
