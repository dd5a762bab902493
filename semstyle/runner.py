"""Run a config end to end: resolve it, make the run folder, call the method, write the artefacts."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from .config import load_config, method_module, to_yaml
from .fingerprint import fingerprint
from .resources import check_memory
from .runs import RunDir


def run(config=None, overrides=(), **options) -> Path:
    """Run a method from a config file, dict or DictConfig, with ``key=value`` overrides and keyword options.

    Returns the finished run folder (``config.yaml``, ``output.png``, ``losses.csv``, ``losses.png``, extras).
    """
    overrides = list(overrides) + [f"{k}={v}" for k, v in options.items()]
    cfg = load_config(config, overrides)
    module = method_module(cfg.method)
    container = OmegaConf.to_container(cfg, resolve=True)
    check_memory(container)  # refuse a size that clearly cannot fit before any folder or heavy work
    with RunDir(cfg.out_dir, cfg.method, resume=cfg.resume, fingerprint=fingerprint(container)) as run_dir:
        run_dir.save_config(to_yaml(cfg))
        module.run(cfg, run_dir)
    return run_dir.path
