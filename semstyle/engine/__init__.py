"""The engine: the optimisation loop, its events and callbacks, objectives, run folders."""

from .engine import Engine
from .events import Event, StopRun
from .loop import Problem, make_optimizer, pixel_problem
from .objective import Objective

__all__ = ["Engine", "Event", "StopRun", "Problem", "pixel_problem", "make_optimizer", "Objective"]
