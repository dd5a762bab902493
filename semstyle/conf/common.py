"""The run keys every method shares, and where the bundled images live."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import PurePosixPath
from typing import List, Optional

from omegaconf import OmegaConf

from ..errors import check
from .checks import check_bool, check_choice, check_number
from .vocab import ARCHS, CONVS, PRECISIONS

COSMETIC_KEYS = ("progress", "out_dir", "resume", "save_every")
"""Keys that change how a run reports, not what it computes."""


def packaged(name: str) -> str:
    """Path of a bundled image, e.g. ``packaged("content/tubingen.jpg")``: the defaults work from any folder."""
    return str(files("semstyle") / "assets" / name)


def _asset(name: str = "") -> str:
    """``${asset:styles/starry_night.jpg}`` in a config file or override: a file under ``semstyle/assets/``, so
    that the bundled configs run from any folder (other relative paths are read from the current folder)."""
    check(
        isinstance(name, str) and name.strip() != "" and not PurePosixPath(name).is_absolute(),
        f"${{asset:{name}}}: expected a path under semstyle/assets/, e.g. ${{asset:styles/starry_night.jpg}}",
    )
    check(".." not in PurePosixPath(name).parts, f"${{asset:{name}}}: '..' leaves semstyle/assets/")
    return packaged(name)


OmegaConf.register_new_resolver("asset", _asset, replace=True)


# L-BFGS's curvature pairs, not torch's 100: each stored pair costs two passes over the image per step (at 512 px
# in bf16 on an AMX Xeon the update took 16 ms with 20 pairs, 8 % of a VGG pass; 100 pairs made a step ~15 % slower
# than 20), and more pairs barely help: 20 instead of 10 left the Monet doodle's loss unchanged (3 seeds), and the
# demo's objective after 20 + 90 steps in fp32 0.2-0.6 % lower on three pairs but 0.4 % higher on a fourth
# (docs/benchmarks.md, "The goal table again, file errors before torch, and the demo's steps at 512 px").
# A run's `lbfgs_history` overrides it: near the optimum of a long run more pairs pay. With neural-style-pt's 100,
# the race reached that tool's objective after 713 steps at 512 px instead of 997, each step 3 % slower in fp32;
# in the demo's 100 steps they ended 0.07-1.0 % lower on four pairs but were higher after 80-90 steps on two
# (docs/benchmarks.md, "The race against neural-style-pt").
LBFGS_HISTORY = 10

STOP_RULES = ("none", "rel_improvement")


@dataclass
class StopConfig:
    """When a scale ends before its ``steps`` (:mod:`semstyle.engine.stopping`); measured in docs/benchmarks.md."""

    rule: str = "none"  # none: every configured step runs | rel_improvement: stop when the loss stops falling
    threshold: float = 1e-3  # relative improvement per step (0.1 %) below which the scale ends
    window: int = 10  # steps averaged over: the L-BFGS history length, so one curvature update
    min_steps: int = 20  # the first steps after a rescale fall fast and unevenly; never stop inside them


@dataclass
class RunConfig:
    """Keys of every run. Each method's config extends this dataclass."""

    method: str = "gatys"
    size: int = 512  # final long side in px
    steps: int = 100  # optimisation steps per scale (at the final size only, when coarse_steps or scale_steps is set)
    scales: List[int] = field(default_factory=list)  # long sides of a coarse-to-fine schedule; [] = one scale
    # steps at every scale below `size` (None = `steps`), whatever `scales` holds: steps are cheap on small images
    coarse_steps: Optional[int] = None
    # steps at each scale below `size`, coarse to fine, one entry per scale (overrides coarse_steps)
    scale_steps: List[int] = field(default_factory=list)
    seed: int = 0
    # auto: bf16 where the CPU/GPU has native bf16 units, except a CPU with AVX512-BF16 but no AMX, where an
    # encoder-bound method's encoder keeps fp32 (NNPACK's kernels are as fast there; encoder_bound); else fp32
    precision: str = "auto"  # auto | fp32 | bf16
    device: str = "auto"  # auto | cpu | cuda
    # the encoder's convolutions: auto (NNPACK's Winograd kernels for fp32 on the CPU, 1.6x faster at 512 px; else
    # PyTorch's own, as `native`)
    conv: str = "auto"  # auto | native | nnpack
    out_dir: Optional[str] = None  # run folder; default runs/<method>-<timestamp>
    save_every: int = 0  # write an intermediate frame every N steps (0 = never)
    resume: bool = False  # continue an interrupted run from <out_dir>.partial
    progress: bool = True  # progress bar
    stop: StopConfig = field(default_factory=StopConfig)
    lbfgs_history: int = LBFGS_HISTORY  # curvature pairs L-BFGS keeps, where a method runs optimizer=lbfgs


def encoder_bound(cfg) -> bool:
    """Whether the VGG-19 encoder's passes dominate a config's step, so that ``precision: auto`` may keep it in fp32
    with NNPACK's kernels on a CPU with avx512_bf16 alone (:func:`semstyle.core.encoder.resolve_precision`'s
    ``winograd``). Not with ``conv: native``, nor where STROTSS's sample products dominate (methods ``strotss``
    and ``dst`` on ``base: strotss``: bf16 runs them faster there, and was the fastest whole step on a Zen 4), nor
    for feed-forward training (its network's oneDNN convolutions gain from bf16). Takes a config or a plain dict.
    """
    method, base = cfg.get("method"), cfg.get("base")
    strotss = method == "strotss" or (method == "dst" and base == "strotss")
    return str(cfg.get("conv", "auto")) != "native" and not strotss and method not in ARCHS


def check_stop(cfg) -> None:
    """The ``stop`` section of ``cfg`` (a config, or ``{"stop": {...}}``): the checks of the loader and of
    :class:`semstyle.engine.stopping.StopRule` alike."""
    check_choice(cfg, "stop.rule", STOP_RULES)
    check_number(cfg, "stop.threshold", lo=0)
    check_number(cfg, "stop.window", lo=1, integer=True)
    check_number(cfg, "stop.min_steps", lo=0, integer=True)


def check_common(cfg) -> None:
    check_number(cfg, "size", lo=16, hi=8192, integer=True)
    check_number(cfg, "steps", lo=0, integer=True)
    check_number(cfg, "seed", integer=True)
    check_number(cfg, "save_every", lo=0, integer=True)
    check_number(cfg, "lbfgs_history", lo=1, hi=1000, integer=True)
    check_choice(cfg, "precision", PRECISIONS)
    check_choice(cfg, "conv", CONVS)
    check_bool(cfg, "resume")
    check_bool(cfg, "progress")
    check_stop(cfg)
    for s in cfg.scales:
        check(isinstance(s, int) and 16 <= s <= 8192, f"scales: each entry must be an integer in [16, 8192], got {s!r}")
    if cfg.get("coarse_steps") is not None:
        check_number(cfg, "coarse_steps", lo=0, integer=True)
    for s in cfg.scale_steps:
        check(isinstance(s, int) and s >= 0, f"scale_steps: each entry must be an integer >= 0, got {s!r}")
    if len(cfg.scale_steps):
        steps_per_scale(cfg, len(scale_schedule(cfg)))


def steps_per_scale(cfg, n_scales: int) -> list[int]:
    """Steps at each of ``n_scales`` scales, coarse to fine: ``scale_steps`` (else ``coarse_steps`` at each coarse
    scale, else ``steps``), then ``steps`` at the final size."""
    every = cfg.get("coarse_steps")
    every = int(cfg.steps) if every is None else int(every)
    coarse = [int(s) for s in cfg.get("scale_steps") or []] or [every] * (n_scales - 1)
    check(
        len(coarse) == n_scales - 1,
        f"scale_steps: {len(coarse)} entries given for the {n_scales - 1} scales below size={cfg.get('size')}; "
        "give one per scale, coarse to fine (the final size runs `steps`)",
    )
    return coarse + [int(cfg.steps)]


def scale_schedule(cfg) -> list[int]:
    """Long sides to optimise at: the ``scales`` below ``size``, then ``size`` itself. A config with ``phases``
    (the doodle's, neural-doodle's ``--phases``) and no ``scales`` halves ``size`` per phase, down to 32 px."""
    if not len(cfg.scales) and "phases" in cfg:
        return sorted({max(32, round(cfg.size / 2 ** (cfg.phases - 1 - i))) for i in range(cfg.phases)})
    return sorted({int(s) for s in cfg.scales if s < cfg.size}) + [int(cfg.size)]
