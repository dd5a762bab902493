"""The engine: one loop for every optimisation-based method.

A method builds, for each scale of its coarse-to-fine schedule, a :class:`~semstyle.engine.loop.Problem`; the
engine seeds the random generators, restores a checkpoint, runs the steps and emits the events that the callbacks
(progress bar, loss log, frames, checkpoints, user code) turn into output::

    engine = Engine(cfg, run_dir, callbacks=[my_callback])
    result = engine.run([256, 512], lambda index, size, previous: Problem(...))
"""

from __future__ import annotations

from typing import Callable

import torch

from ..conf import steps_per_scale
from ..core.encoder import VGG19Encoder, config_precision, resolve_device, vgg19_encoder
from .callbacks import standard_callbacks
from .events import Event, StopRun
from .loop import Problem, run_steps
from .stopping import StopRule

ScaleFn = Callable[[int, int, "torch.Tensor | None"], Problem]


class Engine:
    """Runs a method's scales for a resolved config.

    Args:
        cfg: the resolved config (``seed``, ``precision``, ``device``, ``steps``, ``progress``, ``save_every``).
        run_dir: the :class:`~semstyle.runs.RunDir` to log, checkpoint and save frames into, or None.
        callbacks: extra callables receiving every :class:`Event` (after the standard ones).
        checkpoints: False for methods whose scales are not worth resuming.
    """

    def __init__(self, cfg, run_dir=None, callbacks=(), checkpoints: bool = True):
        self.cfg = cfg
        self.run_dir = run_dir
        self.callbacks = standard_callbacks(cfg, run_dir, checkpoints) + list(callbacks)
        self.checkpoints = checkpoints and run_dir is not None
        self.stopped = False

    def encoder(self, pooling: str) -> VGG19Encoder:
        """The shared VGG-19 at the config's precision, device and convolution kernels."""
        precision = config_precision(self.cfg, resolve_device(self.cfg.device))
        return vgg19_encoder(pooling, precision, self.cfg.device, conv=self.cfg.conv)

    def emit(self, kind: str, **fields) -> None:
        event = Event(kind, str(self.cfg.method), run_dir=getattr(self.run_dir, "path", None), **fields)
        for callback in self.callbacks:
            callback(event)

    def run(
        self,
        sizes: list[int],
        scale_fn: ScaleFn,
        state: dict[str, torch.Tensor] | None = None,
        steps: list[int] | None = None,
    ) -> torch.Tensor:
        """Run ``scale_fn(index, long_side, previous_result_or_None) -> Problem`` for each size, coarse to fine.

        ``state`` holds tensors the method updates between scales (checkpointed with the image and restored on
        resume). ``steps`` per size defaults to the config's (:func:`~semstyle.conf.steps_per_scale`). A callback
        raising :class:`StopRun` ends the run with the current image as its result.
        """
        steps = steps_per_scale(self.cfg, len(sizes)) if steps is None else [int(s) for s in steps]
        history = self.cfg.get("lbfgs_history")  # None (a config without the key): the engine's default
        image, start = None, 0
        saved = self.run_dir.load_checkpoint() if self.checkpoints else None
        if saved is not None:
            tensors, meta = saved
            image, start = tensors.pop("image"), int(meta["scale"]) + 1
            if state is not None:
                state.update(tensors)
        torch.manual_seed(self.cfg.seed)
        self.emit("run_start", scales=len(sizes))
        for index, size in enumerate(sizes):
            if index < start:
                continue
            problem = scale_fn(index, size, image)
            shape = tuple(problem.image().shape[-2:])
            context = dict(scale=index, scales=len(sizes), size=shape, steps=steps[index], label=problem.label)
            self.emit("scale_start", **context, _image=problem.image)

            rule = StopRule.from_config(self.cfg.get("stop"))

            def on_step(step, total, terms) -> bool:
                self.emit("step", **context, step=step, loss=total, terms=terms, _image=problem.image)
                return rule.update(total)

            try:
                run_steps(problem, steps[index], on_step, where=f" of scale {index}", history=history)
            except StopRun:
                self.stopped = True
            image = problem.finish()
            if self.stopped:
                break
            tensors = {"image": image, **(state or {})} if self.checkpoints else {}
            self.emit("scale_end", **context, tensors=tensors)
        self.emit("run_end", scales=len(sizes))
        return image
