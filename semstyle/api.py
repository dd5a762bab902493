"""The Python API and the method registry: ``run(config, overrides, callbacks)``.

    >>> from semstyle.api import run
    >>> folder = run("configs/default.yaml", ["size=64", "steps=2"], progress=False)  # doctest: +SKIP

Every method is registered here, and only here: its config schema (:mod:`semstyle.conf`), the function that
builds and solves its problem on the engine, and what it saves beside ``output.png``.
"""

from __future__ import annotations

import json
import resource
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from omegaconf import OmegaConf

from .conf import SCHEMAS, Schema, load_config, load_train_config, to_yaml
from .core.encoder import config_precision, resolve_device
from .core.image import atomic_write
from .engine import Engine
from .engine.fingerprint import fingerprint
from .engine.resources import check_memory
from .engine.runs import RunDir
from .feedforward import train as ff_train
from .feedforward.stylize import stylize_files
from .methods import doodle, dst, gatys, reconstruct, strotss
from .version import __version__


@dataclass(frozen=True)
class Method:
    """A method: its config schema, ``solve(cfg, engine) -> {"output": image, ...}`` and ``save(result, cfg,
    run_dir)`` for its extra files."""

    schema: Schema
    solve: Callable
    save: Callable | None = None


METHODS: dict[str, Method] = {
    "gatys": Method(SCHEMAS["gatys"], gatys.solve),
    "doodle": Method(SCHEMAS["doodle"], doodle.solve, doodle.save),
    "cnnmrf": Method(SCHEMAS["cnnmrf"], doodle.solve, doodle.save),
    "strotss": Method(SCHEMAS["strotss"], strotss.solve),
    "dst": Method(SCHEMAS["dst"], dst.solve, dst.save),
    "reconstruct": Method(SCHEMAS["reconstruct"], reconstruct.solve, reconstruct.save),
}


def _provenance() -> str:
    """What made a run: the command line, the package version and, in a git checkout, the commit."""
    lines = [f"semstyle {__version__}", f"command: {shlex.join(['semstyle'] + sys.argv[1:])}"]
    try:
        root = Path(__file__).resolve().parents[1]
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if commit.returncode == 0:
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            lines.append(f"git commit: {commit.stdout.strip()}{' (with uncommitted changes)' if dirty else ''}")
    except (OSError, subprocess.SubprocessError):
        pass
    return "\n".join(lines)


def _run_record(cfg, run_dir: RunDir, start: float) -> dict:
    """``run.json``: what the run cost (wall time, peak memory, steps done) and where it ran (resolved precision
    and device), read by :mod:`semstyle.experiments.metrics`. ``seconds`` is this call's wall time (a resumed run
    counts from its resumption); ``steps`` counts every logged step, those before a resumption included.

    ``peak_mb`` is the process's peak resident set (``getrusage`` max RSS, KiB on Linux): for a process that ran
    several runs it is the largest so far, not this run's alone. On CUDA, ``cuda_peak_mb`` is this run's peak of
    allocated GPU memory (the counter is reset when the run starts).
    """
    device = resolve_device(cfg.device)
    record = {
        "seconds": round(time.perf_counter() - start, 3),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "steps": len(run_dir.log.rows),
        "precision": config_precision(cfg, device),
        "device": str(device),
    }
    if device.type == "cuda":
        record["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return record


def run(config=None, overrides=(), callbacks=(), **options) -> Path:
    """Run a method from a config file, dict or DictConfig, with ``key=value`` overrides and keyword options.

    ``callbacks`` receive every :class:`~semstyle.engine.events.Event` of the run; one may raise
    :class:`~semstyle.engine.events.StopRun` to end it early with the current image. Returns the finished run
    folder (``config.yaml``, ``output.png``, ``losses.csv``, ``losses.png``, ``run.json``, and the method's
    extras).
    """
    overrides = list(overrides) + [f"{k}={v}" for k, v in options.items()]
    cfg = load_config(config, overrides)
    method = METHODS[cfg.method]
    container = OmegaConf.to_container(cfg, resolve=True)
    check_memory(container)  # refuse a size that clearly cannot fit before any folder or heavy work
    start = time.perf_counter()
    if resolve_device(cfg.device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with RunDir(cfg.out_dir, cfg.method, resume=cfg.resume, fingerprint=fingerprint(container)) as run_dir:
        run_dir.save_config(to_yaml(cfg, _provenance()))
        engine = Engine(cfg, run_dir, callbacks)
        result = method.solve(cfg, engine)
        run_dir.save_image("output.png", result["output"])
        if method.save is not None:
            method.save(result, cfg, run_dir)
        record = json.dumps(_run_record(cfg, run_dir, start), indent=1) + "\n"
        atomic_write(run_dir.path / "run.json", lambda tmp: Path(tmp).write_text(record))
    return run_dir.path


# -- feed-forward networks (semstyle.feedforward) ------------------------------------------------------------------


def train(config=None, overrides=(), callbacks=(), **options) -> Path:
    """Train a feed-forward network (``semstyle train``); returns the finished run folder, which holds the model
    file (``model.safetensors``), ``losses.csv``/``losses.png``, ``samples/`` and ``training.json``."""
    overrides = list(overrides) + [f"{k}={v}" for k, v in options.items()]
    cfg = load_train_config(config, overrides)
    return ff_train.train(cfg, callbacks, header=_provenance())


def stylize(model, inputs, out_dir="stylized", size=None, batch=4, device="auto", precision="auto", progress=True):
    """Stylise images, folders of images and videos with a trained model file (``semstyle stylize``); returns the
    written files."""
    return stylize_files(model, inputs, out_dir, size, batch, device, precision, progress)


__all__ = ["run", "load_config", "METHODS", "Method", "train", "load_train_config", "stylize"]
