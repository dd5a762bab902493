"""Timing helpers for the benchmarks: median wall time of a callable, peak RSS."""

from __future__ import annotations

import platform
import resource
import statistics
import time

import torch


def median_time(fn, repeats: int = 5, warmup: int = 2) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}{gpu}"


def bare_vgg_step(encoder, image: torch.Tensor, layer: str = "relu5_1"):
    """A callable doing one bare VGG-19 forward+backward to ``layer`` on ``image`` (the reference cost)."""
    x = image.clone().requires_grad_(True)

    def step():
        x.grad = None
        encoder(x, [layer])[layer].sum().backward()

    return step
