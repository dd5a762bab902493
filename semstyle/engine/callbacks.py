"""The callbacks every run gets: a progress bar, the loss log, intermediate frames and per-scale checkpoints."""

from __future__ import annotations

from tqdm.auto import tqdm

from .events import Event


class ProgressBar:
    """One tqdm bar per scale, with the total and each weighted term. Its description names the scale among the
    run's (``gatys 256px [1/2]``): a bar that fills quickly may be the first of several, and the last is the long
    one (the demo's 512 px stage takes over 15x as long as its 256 px stage)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar = None

    def __call__(self, event: Event) -> None:
        if event.kind == "scale_start":
            desc = event.label or f"scale {event.scale}"
            if event.scales > 1:
                desc += f" [{event.scale + 1}/{event.scales}]"
            self.bar = tqdm(
                total=event.steps,
                desc=desc,
                disable=not self.enabled,
                leave=False,
                dynamic_ncols=True,
            )
        elif event.kind == "step" and self.bar is not None:
            self.bar.set_postfix(
                {"loss": f"{event.loss:.4g}", **{k: f"{v:.3g}" for k, v in event.terms.items()}}, refresh=False
            )
            self.bar.update(1)
        elif event.kind in ("scale_end", "run_end") and self.bar is not None:
            self.bar.close()
            self.bar = None


class LossLogger:
    """One row per step into the run folder's :class:`~semstyle.engine.losslog.LossLog`."""

    def __init__(self, log):
        self.log = log

    def __call__(self, event: Event) -> None:
        if event.kind == "step":
            self.log.add(event.scale, event.step - 1, event.loss, event.terms)


class FrameSaver:
    """``frames/s<scale>_<step>.png`` every ``every`` steps."""

    def __init__(self, run_dir, every: int):
        self.run_dir, self.every = run_dir, every

    def __call__(self, event: Event) -> None:
        if event.kind == "step" and event.step % self.every == 0:
            self.run_dir.save_image(f"frames/s{event.scale}_{event.step:05d}.png", event.current_image())


class Checkpointer:
    """After each scale, the image and the method's state into the run folder's checkpoint (resume starts after
    the last finished scale)."""

    def __init__(self, run_dir):
        self.run_dir = run_dir

    def __call__(self, event: Event) -> None:
        if event.kind == "scale_end" and event.tensors:
            self.run_dir.save_checkpoint(event.tensors, scale=event.scale)


def standard_callbacks(cfg, run_dir=None, checkpoints: bool = True) -> list:
    """The callbacks a run's config asks for: progress bar, and with a run folder the loss log, frames and
    checkpoints."""
    callbacks = [ProgressBar(bool(cfg.progress))]
    if run_dir is not None:
        callbacks.append(LossLogger(run_dir.log))
        if cfg.save_every > 0:
            callbacks.append(FrameSaver(run_dir, int(cfg.save_every)))
        if checkpoints:
            callbacks.append(Checkpointer(run_dir))
    return callbacks
