"""Run folders: every run writes ``config.yaml``, ``output.png``, ``losses.csv``, ``losses.png`` (+ extras).

A run works in ``<out_dir>.partial`` and renames it to ``out_dir`` only when it finishes, so a folder named
``out_dir`` is always complete. Bad input (a :class:`SemstyleError`) removes the partial folder; any other failure
or an interrupt keeps it with its checkpoint, and ``resume=true`` continues from there.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .errors import ConfigError, SemstyleError, check
from .core.image import atomic_write, save_image
from .engine.losslog import LossLog

CHECKPOINT = "checkpoint.safetensors"


class RunDir:
    """Context manager for one run's folder. Use :attr:`path` for files written during the run."""

    def __init__(self, out_dir: str | None, method: str, resume: bool = False):
        if out_dir is None:
            out_dir = f"runs/{method}-{time.strftime('%Y%m%d-%H%M%S')}"
        self.final = Path(out_dir)
        self.path = self.final.with_name(self.final.name + ".partial")
        self.resume = resume
        self.log = LossLog()
        check(not (self.final.exists() and any(self.final.iterdir()) if self.final.is_dir() else self.final.exists()),
              f"out_dir {self.final}: already exists and is not empty; choose another out_dir (runs are never overwritten)")
        if self.path.exists() and not resume:
            raise ConfigError(f"out_dir {self.final}: an unfinished run is in {self.path}; "
                              "pass resume=true to continue it, or remove that folder")

    def __enter__(self) -> "RunDir":
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.finish()
        elif issubclass(exc_type, SemstyleError):
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            print(f"semstyle: run interrupted; partial results kept in {self.path} (resume=true continues)", file=sys.stderr)
        return False

    def save_config(self, yaml_text: str) -> None:
        atomic_write(self.path / "config.yaml", lambda tmp: Path(tmp).write_text(yaml_text))

    def save_image(self, name: str, image) -> Path:
        return save_image(image, self.path / name)

    def save_checkpoint(self, tensors: dict[str, torch.Tensor], **meta) -> None:
        """Tensors plus string-able metadata (e.g. the index of the last finished scale)."""
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        meta["log"] = json.dumps(self.log.rows)
        atomic_write(self.path / CHECKPOINT,
                     lambda tmp: save_file(tensors, tmp, metadata={k: str(v) for k, v in meta.items()}))

    def load_checkpoint(self) -> tuple[dict[str, torch.Tensor], dict[str, str]] | None:
        """The saved checkpoint when resuming, else None."""
        path = self.path / CHECKPOINT
        if not (self.resume and path.exists()):
            return None
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        self.log.rows = json.loads(meta.pop("log", "[]"))
        return load_file(str(path)), meta

    def finish(self) -> None:
        atomic_write(self.path / "losses.csv", lambda tmp: Path(tmp).write_text(self.log.to_csv()))
        if self.log.rows:
            atomic_write(self.path / "losses.png", lambda tmp: self.log.plot(tmp))
        (self.path / CHECKPOINT).unlink(missing_ok=True)
        if self.final.is_dir():  # an empty folder the user made beforehand
            self.final.rmdir()
        self.path.rename(self.final)
        self.path = self.final
