"""How much memory a run needs, how much the machine has, and a refusal before the heavy work when it clearly
does not fit.

Peak resident memory (RSS) of a CPU run is modelled as ``base + per_pixel * H * W`` for the final scale's content
size ``H x W`` (coarser scales are smaller and freed before the next one). Gatys fp32 anchors (issue 21, peak RSS of
``semstyle run configs/default.yaml`` at three sizes): 1.09 GiB at 512x384, 2.33 GiB at 1024x768, 6.93 GiB at
2048x1536; a least-squares line through them gives :data:`MODELS` ``["gatys"]`` (within 4 % of each anchor). The
other methods' models are scaled from measurements at 256-512 px (see :data:`MODELS`). Every estimate is then
multiplied by :data:`MACHINE_SPREAD`, since the same run peaks higher on some machines. CUDA runs are not
checked (GPU memory is another budget; torch reports it on failure).
"""

from __future__ import annotations

import math
import os
import resource
import warnings
from pathlib import Path

import torch
from PIL import Image

from ..conf.common import encoder_bound
from ..core.encoder import cpu_supports_bf16, resolve_conv, resolve_precision
from ..errors import ConfigError, ResourceError

GIB = 1024**3

# (base bytes, bytes per content pixel at the final scale), fp32 on a CPU. See the module docstring and
# tests/engine/test_run_safety.py::test_memory_model_matches_a_measured_peak for the check on another method.
MODELS: dict[str, tuple[float, float]] = {}

# Refuse only when the estimate exceeds what is available by this factor: the model is a few-% fit for Gatys but
# coarser for the other methods, and a refusal of a run that would have fitted is worse than a late failure.
CLEARLY = 1.25


def _fit(anchors: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares ``(base, per_pixel)`` through ``(pixels, GiB)`` anchors, in bytes."""
    n = len(anchors)
    mx = sum(p for p, _ in anchors) / n
    my = sum(g for _, g in anchors) / n
    slope = sum((p - mx) * (g - my) for p, g in anchors) / sum((p - mx) ** 2 for p, _ in anchors)
    return (my - slope * mx) * GIB, slope * GIB


MODELS["gatys"] = _fit([(512 * 384, 1.09), (1024 * 768, 2.33), (2048 * 1536, 6.93)])


def _relative(extra_base_gib: float, per_pixel_ratio: float) -> tuple[float, float]:
    base, per_pixel = MODELS["gatys"]
    return base + extra_base_gib * GIB, per_pixel * per_pixel_ratio


# Measured against Gatys in one sitting (AMD EPYC with AVX-512/avx512_bf16, 2 cores shared with other sessions,
# torch 2.13 CPU; `OMP_NUM_THREADS=1 /usr/bin/time -f %M semstyle run CONFIG size=S scales=[] steps=2 precision=fp32
# progress=false`), peak RSS at long side 256 / 384 / 512 px of configs/default.yaml, configs/strotss/default.yaml
# and configs/doodle/monet.yaml: Gatys 0.73 / 0.87 / 1.05 GiB, STROTSS 0.91 / 1.15 /
# 1.44 GiB (a line 1.66x as steep, 0.11 GiB higher), the Monet doodle 0.78 / 0.94 GiB at 256 / 384 (1.22x as
# steep). Patch matching (doodle, CNNMRF) may grow faster than linearly at large sizes: not measured.
MODELS["strotss"] = _relative(0.11, 1.66)
MODELS["doodle"] = _relative(0.02, 1.22)
MODELS["cnnmrf"] = MODELS["doodle"]


# The same run peaks higher on some machines than on the one the anchors were taken on: STROTSS at 320 px, fp32, one
# thread, 2 steps, peaked at 1.00-1.04 GiB here (the AMD EPYC above, dev and fresh-clone venvs, THP on or off) and at
# 1.39 GiB in CI (another machine kind, same packages). Estimates are scaled towards the middle of that spread: the
# STROTSS estimate (1.26 GiB) is then 9 % under the CI peak and 21 % over the peak here, where it was 21 % under.
MACHINE_SPREAD = 1.15

# bf16 activations: Gatys at 768x576 peaked at 1.34 GiB in bf16 against 1.58 GiB in fp32 (same sitting, same
# conditions as above), 0.75x the fp32 per-pixel cost over a common base.
BF16_PER_PIXEL = 0.75

# NNPACK's convolutions (fp32 on the CPU, core/nnpack.py) keep a workspace as large as their largest layer's
# Winograd tiles: Gatys at 512x384 / 1024x768 (2 steps, 2 threads, the AMD EPYC above, 2026-11-28) peaked at
# 1.24 / 2.84 GiB against 1.03 / 2.34 GiB with the native kernels: 1.23x the per-pixel cost and 0.11 GiB more base.
# Since its kernels are transformed once per process and kept (forward and input gradient, VGG-19 to conv5_1), the
# same runs peak 0.67 / 0.70 GiB higher (1.98 / 4.50 against 1.31 / 3.80 GiB, the AVX2-only Zen 3, 2026-11-28).
NNPACK_PER_PIXEL = 1.23
NNPACK_BASE_GIB = 0.11 + 0.70


def run_precision(cfg: dict) -> str:
    """``fp32`` or ``bf16``: what the config's ``precision`` means on this CPU."""
    precision = str(cfg.get("precision", "fp32"))
    if precision not in ("auto", "fp32", "bf16"):
        return "fp32"
    with warnings.catch_warnings():  # the bf16 fallback warning is the encoder's to give, once
        warnings.simplefilter("ignore")
        return resolve_precision(precision, "cpu", winograd=encoder_bound(cfg))


def run_conv(cfg: dict) -> str:
    """``native`` or ``nnpack``: the encoder's kernels for the config on this CPU."""
    try:
        return resolve_conv(str(cfg.get("conv", "auto")), run_precision(cfg), "cpu")
    except ConfigError:  # an impossible choice is the encoder's to report
        return "native"


def method_model(cfg: dict) -> tuple[float, float]:
    """``(base bytes, bytes per pixel)`` for a config: DST costs what its base method does; others as Gatys."""
    method = str(cfg.get("method", "gatys"))
    if method == "dst":
        method = "strotss" if cfg.get("base") == "strotss" else "gatys"
    base, per_pixel = MODELS.get(method, MODELS["gatys"])
    precision = BF16_PER_PIXEL if run_precision(cfg) == "bf16" else 1.0
    if run_conv(cfg) == "nnpack":
        base, per_pixel = base + NNPACK_BASE_GIB * GIB, per_pixel * NNPACK_PER_PIXEL
    return base * MACHINE_SPREAD, per_pixel * precision * MACHINE_SPREAD


def content_shape(cfg: dict) -> tuple[int, int]:
    """``(H, W)`` of the final scale: the content image's aspect at long side ``size`` (4:3 when there is no file)."""
    size = int(cfg.get("size", 512))
    aspect = 0.75
    target = cfg.get("target")
    # the doodle's target map sets its shape; reconstruct optimises towards `image`
    content = cfg.get("content") or (target.get("map") if isinstance(target, dict) else None) or cfg.get("image")
    if isinstance(content, str) and os.path.isfile(content):
        try:
            with warnings.catch_warnings():  # a decompression bomb is the image loader's to report, in one line
                warnings.simplefilter("ignore")
                with Image.open(content) as im:  # reads the header only
                    w, h = im.size
            aspect = min(w, h) / max(w, h)
        except Exception:  # an unreadable image is reported by the method, with its own message
            pass
    short = max(1, round(size * aspect))
    return (short, size)


def estimate_bytes(method: str | dict, height: int, width: int) -> float:
    """Estimated peak RSS in bytes of a CPU run of ``method`` (a name or a config) whose final scale is ``height x
    width`` (a name alone means fp32)."""
    base, per_pixel = method_model(method if isinstance(method, dict) else {"method": method, "precision": "fp32"})
    return base + per_pixel * height * width


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _cgroup() -> tuple[int, int] | None:
    """``(limit, headroom)`` in bytes of this cgroup's memory limit (v2 or v1), or None without a limit."""
    for limit_file, usage_file, stat_file, inactive in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory.stat", "inactive_file"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
            "/sys/fs/cgroup/memory/memory.stat",
            "total_inactive_file",
        ),
    ):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is None or usage is None or limit >= 1 << 60:  # "max" or v1's "no limit" (~2^63)
            continue
        cache = 0
        try:  # page cache the kernel drops under pressure does not count against a run
            for line in Path(stat_file).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == inactive:
                    cache = int(value)
        except (OSError, ValueError):
            pass
        return limit, max(0, limit - usage + cache)
    return None


def _meminfo(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _own_rss() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def available_bytes() -> int | None:
    """Memory this process could reach: what it holds plus ``MemAvailable`` (or the cgroup's headroom if smaller).

    None when neither can be read (not Linux).
    """
    cgroup = _cgroup()
    free = [b for b in (_meminfo("MemAvailable"), cgroup[1] if cgroup else None) if b is not None]
    return min(free) + _own_rss() if free else None


def total_bytes() -> int | None:
    """The most memory a process here could ever have: ``MemTotal`` or the cgroup limit if smaller (None if unknown)."""
    cgroup = _cgroup()
    sizes = [b for b in (_meminfo("MemTotal"), cgroup[0] if cgroup else None) if b is not None]
    return min(sizes) if sizes else None


def fitting_size(cfg: dict, budget: float) -> int | None:
    """The largest long side, a multiple of 64, whose estimate fits in ``budget`` bytes (None below 64 px)."""
    h, w = content_shape(cfg)
    aspect = h / w
    base, per_pixel = method_model(cfg)
    if budget <= base:
        return None
    side = math.sqrt((budget - base) / (per_pixel * aspect))
    side = int(side // 64 * 64)
    return side if side >= 64 else None


def _hint(cfg: dict, budget: float | None) -> str:
    size = fitting_size(cfg, budget * 0.8) if budget else None  # 20 % headroom for the model's error
    hints = [f"size={size}"] if size and size < int(cfg.get("size", 0)) else []
    if budget and run_precision(cfg) == "fp32" and cpu_supports_bf16():  # never suggest bf16 where it crawls
        h, w = content_shape(cfg)
        if estimate_bytes({**cfg, "precision": "bf16"}, h, w) <= budget:
            hints.append("precision=bf16")
    return "try " + " or ".join(hints) if hints else "close other programs or use a machine with more memory"


def _on_cpu(cfg: dict) -> bool:
    device = str(cfg.get("device", "auto"))
    if device == "auto":
        return not torch.cuda.is_available()
    return device.startswith("cpu")


def check_memory(cfg: dict, available: int | None = None) -> None:
    """Refuse (:class:`ResourceError`) a CPU run whose estimated peak clearly exceeds the available memory.

    ``cfg`` is the resolved config as a plain dict; ``available`` defaults to :func:`available_bytes`.
    """
    if not _on_cpu(cfg):
        return
    available = available_bytes() if available is None else available
    if available is None:
        return
    h, w = content_shape(cfg)
    need = estimate_bytes(cfg, h, w)
    if need > CLEARLY * available:
        raise ResourceError(
            f"size={cfg.get('size')}: a {w}x{h} px {cfg.get('method')} run needs about "
            f"{need / GIB:.1f} GiB of memory, {available / GIB:.1f} GiB is available; "
            f"{_hint(cfg, available)}"
        )


def out_of_memory(cfg: dict) -> tuple[str, bool]:
    """The one line for a run that ran out of memory part way, and whether resuming it can succeed: only when the
    estimate fits the machine's total memory (other programs held the rest); otherwise the same settings would run
    out again, and the line says what would fit."""
    if not cfg:
        return "out of memory; try a smaller size", False
    h, w = content_shape(cfg)
    need = estimate_bytes(cfg, h, w)
    total, available = total_bytes(), available_bytes()
    head = f"out of memory at {cfg.get('size')} px: about {need / GIB:.1f} GiB needed"
    if total is not None and need <= 0.8 * total:
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        who = (
            "other programs"
            if limit == resource.RLIM_INFINITY
            else f"a ulimit -v of {limit / GIB:.1f} GiB or other programs"
        )
        return (
            f"{head} of the machine's {total / GIB:.1f} GiB, so {who} held the rest; free some memory, "
            "then resume=true continues"
        ), True
    budget = min(b for b in (available, total, need) if b is not None)
    have = f" ({total / GIB:.1f} GiB in this machine)" if total is not None else ""
    return f"{head}{have}; {_hint(cfg, budget)}", False
