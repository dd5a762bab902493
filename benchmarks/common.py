"""Timing helpers for the benchmarks: median wall time of a callable, a timed ``semstyle run``, the unit of issue 17
(a bare fp32 VGG-19 pass), peak RSS."""

from __future__ import annotations

import csv
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import semstyle  # noqa: F401  (before torch, as the command line does: it sets GOMP_SPINCOUNT for NNPACK's threads)

# isort: split
import torch


def timed(fn, clock=time.perf_counter) -> float:
    """Seconds of one ``fn()`` on ``clock``, the GPU's queue drained before and after."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = clock()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return clock() - t


def median_time(fn, repeats: int = 5, warmup: int = 2, clock=time.perf_counter) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs, read on ``clock`` (wall time by
    default; ``time.process_time`` gives this process's CPU seconds, which resist the load of a shared machine)."""
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn, clock) for _ in range(repeats))


def interleaved_medians(fns: dict, repeats: int = 5, clock=time.perf_counter) -> dict:
    """Median seconds of each callable in ``fns``, timed in turn (one of each per round), after one warm-up call
    each. A ratio of two costs read this way resists a machine whose speed drifts between two medians."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn, clock))
    return {name: statistics.median(ts) for name, ts in times.items()}


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}{gpu}"


def runnable_precisions(precisions, device: str = "auto") -> list[str]:
    """``precisions`` without ``bf16`` where ``device`` has no bf16 units, with a note saying so: semstyle runs
    fp32 there (``resolve_precision``), so a "bf16" row would be an fp32 row under the wrong name."""
    from semstyle.core.encoder import bf16_is_native, resolve_device

    if "bf16" in precisions and not bf16_is_native(resolve_device(device)):
        print(f"# bf16 skipped: this {resolve_device(device).type} has no bf16 units (semstyle runs fp32 there)")
        return [p for p in precisions if p != "bf16"]
    return list(precisions)


def bare_vgg_step(encoder, image: torch.Tensor, layer: str = "relu5_1"):
    """A callable doing one bare VGG-19 forward+backward to ``layer`` on ``image`` (the reference cost)."""
    x = image.clone().requires_grad_(True)

    def step():
        x.grad = None
        encoder(x, [layer])[layer].sum().backward()

    return step


def lbfgs_step(objective, image: torch.Tensor, view=None):
    """A callable doing one L-BFGS step of ``objective(view(image))`` with pixels clamped, as the methods do.

    ``image`` must be a leaf with ``requires_grad``; ``view`` (default identity) maps it to what the objective reads.
    """
    from semstyle.engine import make_optimizer

    view = view or (lambda x: x)
    opt = make_optimizer("lbfgs", [image])

    def closure():
        opt.zero_grad()
        total, _ = objective(view(image))
        total.backward()
        return total

    def step():
        opt.step(closure)
        with torch.no_grad():
            image.clamp_(0, 1)

    return step


def lbfgs_without_last_step(opt, x: torch.Tensor) -> None:
    """Let torch's L-BFGS on ``x`` go on with the curvature pairs in its state after ``x`` was moved (or the pairs
    were put there) by something else: its next step is of the kind that reads the pairs, and adds none for the
    move (a zero last step)."""
    zeros = torch.zeros(x.numel())
    opt.state[x].update(func_evals=0, n_iter=1, d=zeros, t=0.0, prev_flat_grad=zeros.clone(), prev_loss=None)


def bare_unit(clock=time.perf_counter, layout: str = "channels_last") -> float:
    """Seconds (on ``clock``, see :func:`median_time`) of one bare fp32 VGG-19 forward+backward to relu5_1 at
    512x384 with PyTorch's own convolutions (in ``layout``) and glibc's default allocator: the unit issue 17's
    goals are read in, plain PyTorch's pass as the issue measured it. Runs with semstyle's faster passes (NNPACK's
    kernels, ``conv: auto`` in fp32; freed memory kept, :mod:`semstyle.core.allocator`) are read in this same
    unit, so that their gain shows. Measured in a child process, since keeping freed memory is process-wide."""
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); import common, torch; "
        "from semstyle.core.encoder import VGG19Encoder; "
        "encoder = VGG19Encoder('avg', 'fp32', 'cpu', conv='native', layout=sys.argv[3]); "
        "step = common.bare_vgg_step(encoder, torch.rand(1, 3, 384, 512)); "
        "print(common.median_time(step, repeats=3, warmup=1, clock=getattr(time, sys.argv[2])))"
    )
    env = {**os.environ, "SEMSTYLE_KEEP_FREED_MEMORY": "0"}
    here = str(Path(__file__).resolve().parent)
    done = subprocess.run(
        [sys.executable, "-c", code, here, clock.__name__, layout], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"measuring the unit failed:\n{done.stderr}")
    return float(done.stdout.split()[-1])


def timed_run(config, overrides: list[str], clock=time.perf_counter) -> tuple[float, list[dict]]:
    """Seconds (on ``clock``, see :func:`median_time`) of ``semstyle.api.run(config, overrides)`` into a temporary
    folder (no progress bar), and the rows of its ``losses.csv``."""
    from semstyle.api import run

    with tempfile.TemporaryDirectory() as tmp:
        start = clock()
        path = run(config, [*overrides, "progress=false", f"out_dir={tmp}/run"])
        seconds = clock() - start
        rows = list(csv.DictReader((path / "losses.csv").read_text().splitlines()))
    return seconds, rows
