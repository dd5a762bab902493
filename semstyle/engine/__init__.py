"""The engine: the optimisation loop, its events and callbacks, objectives, run folders."""

from .engine import Engine
from .events import Event, StopRun
from .loop import Problem, make_optimizer
from .objective import Objective

__all__ = ["Engine", "Event", "StopRun", "Problem", "make_optimizer", "Objective"]
