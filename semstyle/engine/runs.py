"""Run folders: every run writes ``config.yaml``, ``output.png``, ``losses.csv``, ``losses.png`` (+ extras).

A run works in ``<out_dir>.partial`` and renames it to ``out_dir`` only when it finishes, so a folder named
``out_dir`` is always complete. While it runs, it holds an exclusive lock on ``<out_dir>.partial/.lock``: a second
process on the same ``out_dir`` is refused ("in use by process N"). Bad input (a :class:`SemstyleError`) removes
the partial folder; any other failure or an interrupt keeps it with its checkpoint, and ``resume=true`` continues
from there, after checking that the checkpoint was made with the same settings, inputs and package version (its
:mod:`semstyle.fingerprint`). A failure that a resume cannot fix (out of memory, an unreadable checkpoint, a full
disk with no checkpoint yet) ends in one line saying what happened, and keeps the folder only when a resume can
succeed.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..conf.checks import check_new_folder, check_run_folder
from ..core.image import atomic_write, save_image
from ..errors import ConfigError, ResourceError, SemstyleError, check
from . import divergence
from . import fingerprint as fp
from .losslog import LossLog
from .resources import out_of_memory

CHECKPOINT = "checkpoint.safetensors"
FINGERPRINT = "fingerprint.json"  # the run's fingerprint, written at the start (also inside each checkpoint)
WARNINGS = "warnings.txt"  # one line per warning (e.g. a diverged scale); only written when there is one
LOCK = ".lock"  # flock()ed for the life of the run; holds the owner's pid


def is_out_of_memory(exc: BaseException) -> bool:
    """A CPU (``DefaultCPUAllocator: can't allocate memory``) or CUDA (``CUDA out of memory``) allocation failure."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate" in text)


def is_disk_full(exc: BaseException) -> bool:
    """``ENOSPC``/``EDQUOT``, also when a library wrapped it (safetensors reports Rust's io error as text)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "No space left on device" in text or "os error 28" in text or "Disk quota exceeded" in text


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of ``tensors``: safetensors has no checksum of its own, so a
    flipped byte in the data would otherwise resume silently."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a checkpoint file, or a :class:`ConfigError` saying why it cannot be read."""
    try:
        check(path.stat().st_size > 0, "it is empty")
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
        tensors = load_file(str(path))  # reads every tensor: a truncated body fails here, not half way into the run
        check(
            meta.get("sha256", tensors_digest(tensors)) == tensors_digest(tensors), "its data do not match its checksum"
        )
        int(meta.get("scale", 0))
        json.loads(meta.get("log", "[]"))
    except ConfigError as e:
        raise ConfigError(str(e)) from None
    except Exception as e:  # safetensors' header errors, a truncated body, bad metadata
        raise ConfigError(" ".join(str(e).split()) or type(e).__name__) from None
    return tensors, meta


class _NotResumable(Exception):
    """Why a partial folder cannot be resumed by this run (``mismatch``: its settings or inputs differ)."""

    def __init__(self, reason: str, mismatch: bool = False):
        super().__init__(reason)
        self.mismatch = mismatch


class RunDir:
    """Context manager for one run's folder. Use :attr:`path` for files written during the run.

    ``fingerprint`` (see :func:`semstyle.fingerprint.fingerprint`) is stored with every checkpoint; a resumed run
    whose fingerprint differs is refused with the keys that differ. Without it no check is made.
    """

    def __init__(
        self,
        out_dir: str | None,
        method: str,
        resume: bool = False,
        fingerprint: dict | None = None,
        key: str = "out_dir",
    ):
        if out_dir is None:
            out_dir = f"runs/{method}-{time.strftime('%Y%m%d-%H%M%S')}"
        check_run_folder(out_dir, key)  # before any work: /proc, ".", a parent that is a file, a used folder, ...
        self.final = Path(out_dir)
        self.path = self.final.with_name(self.final.name + ".partial")
        self.resume = resume
        self.key = key
        self.fingerprint = fingerprint
        self.log = LossLog()
        self.warnings: list[str] = []
        self._lock: int | None = None
        self._created = False  # this run made the partial folder (so may remove it when it fails to start)
        self._saved: tuple[dict[str, torch.Tensor], dict[str, str]] | None = None
        self._previous_image: torch.Tensor | None = None

    # --- the lock -------------------------------------------------------------------------------------------------
    def _acquire_lock(self) -> None:
        """flock ``.lock`` in the partial folder (making the folder if needed), or say which process holds it."""
        lock = self.path / LOCK
        for _ in range(100):
            try:
                self.path.mkdir(parents=True)
                self._created = True
            except FileExistsError:
                pass
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # the folder was renamed away by a run finishing right now
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):  # e.g. some NFS mounts
                    print(
                        f"semstyle: warning: cannot lock {lock} ({os.strerror(e.errno)}): make sure no other process "
                        "uses this out_dir",
                        file=sys.stderr,
                    )
                    self._lock = fd
                    return
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    os.close(fd)
                    raise
                owner = os.read(fd, 32).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise ConfigError(
                    f"out_dir {self.final} is in use by process {owner}; wait for it to finish "
                    "or choose another out_dir"
                ) from None
            try:  # a finishing run renames the folder and unlinks its lock file: ours must still be the live one
                live = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                live = False
            if live:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._lock = fd
                return
            os.close(fd)
        raise ConfigError(f"out_dir {self.final}: could not lock {lock}")

    def _release_lock(self) -> None:
        if self._lock is not None:
            try:
                (self.path / LOCK).unlink(missing_ok=True)
            finally:
                os.close(self._lock)  # closing the descriptor drops the flock
                self._lock = None

    # --- resuming -------------------------------------------------------------------------------------------------
    def _saved_fingerprint(self) -> dict | None:
        """The fingerprint of the run that made the partial folder: its checkpoint's, else ``fingerprint.json``'s."""
        if self._saved is not None:
            text = self._saved[1].get("fingerprint")
            if text is None:
                raise _NotResumable(
                    f"the checkpoint in {self.path} was written by an older semstyle without a "
                    "fingerprint, so it cannot be checked against this run"
                )
            return json.loads(text)
        try:
            return json.loads((self.path / FINGERPRINT).read_text())
        except (OSError, ValueError):
            return None

    def _check_resumable(self) -> None:
        """Read the partial folder's checkpoint and check it against this run, or raise :class:`_NotResumable`."""
        checkpoint = self.path / CHECKPOINT
        if checkpoint.exists():
            try:
                self._saved = read_checkpoint(checkpoint)
            except ConfigError as e:
                raise _NotResumable(f"the checkpoint {checkpoint} cannot be read ({e})") from None
        old = self._saved_fingerprint()
        if old is None or self.fingerprint is None:
            return
        keys = fp.diff(old, self.fingerprint)
        if keys:
            what = "the checkpoint" if self._saved is not None else "the unfinished run"
            raise _NotResumable(
                f"{what} in {self.path} was made with {fp.describe(old, keys)}; this run has "
                f"{fp.describe(self.fingerprint, keys)}",
                mismatch=True,
            )

    def __enter__(self) -> "RunDir":
        try:
            self._acquire_lock()
            check_new_folder(self.final, self.key)  # a run on this out_dir may have finished since __init__
            existed = not self._created
            try:
                if existed or self.resume:
                    self._check_resumable()
            except _NotResumable as e:
                if self.resume:
                    fix = (
                        "start a new out_dir or restore those values"
                        if e.mismatch
                        else f"remove {self.path} or choose another out_dir"
                    )
                    raise ConfigError(f"resume: {e} — {fix}") from None
                # no resume advice for a folder that cannot be resumed
                raise ConfigError(
                    f"out_dir {self.final}: the unfinished run in {self.path} cannot be resumed: {e}; "
                    "remove that folder or choose another out_dir"
                ) from None
            if existed and not self.resume:
                raise ConfigError(
                    f"out_dir {self.final}: an unfinished run is in {self.path}; "
                    "pass resume=true to continue it, or remove that folder"
                )
            if self.fingerprint is not None:
                atomic_write(
                    self.path / FINGERPRINT, lambda tmp: Path(tmp).write_text(fp.dumps(self.fingerprint) + "\n")
                )
        except BaseException:
            if self._lock is not None and self._created:  # never a folder another process made or holds
                shutil.rmtree(self.path, ignore_errors=True)
            self._release_lock()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                try:
                    self.finish()
                    return False
                except Exception as e:  # a full disk while writing the last files
                    exc_type, exc = type(e), e
                    if not (is_disk_full(e) or is_out_of_memory(e)):
                        raise
            if issubclass(exc_type, SemstyleError):
                if self._saved is None:  # a resumed checkpoint is the user's work: bad input now does not void it
                    shutil.rmtree(self.path, ignore_errors=True)
                return False
            if is_out_of_memory(exc):
                raise ResourceError(self._out_of_memory_message()) from None
            if is_disk_full(exc):
                raise ResourceError(self._disk_full_message(exc)) from None
            kept = f"partial results kept in {self.path} (resume=true continues)"
            if issubclass(exc_type, KeyboardInterrupt):  # the command line says it in its one closing line
                raise KeyboardInterrupt(kept) from None
            print(f"semstyle: run interrupted; {kept}", file=sys.stderr)
            return False
        finally:
            self._release_lock()

    def _out_of_memory_message(self) -> str:
        message, resumable = out_of_memory(self.fingerprint or {})
        if resumable and (self.path / CHECKPOINT).exists():
            return message + f" (from the last finished scale, kept in {self.path})"
        shutil.rmtree(self.path, ignore_errors=True)  # the same settings would run out again, or nothing to resume
        return message.replace("then resume=true continues", "then run again") + f" (removed {self.path})"

    def _disk_full_message(self, exc: BaseException) -> str:
        where = getattr(exc, "filename", None)
        if where:  # atomic_write's temp file ".NAME.XXXXXXXX.tmp" stands for NAME
            where = re.sub(r"(^|/)\.([^/]+)\.[A-Za-z0-9_]+\.tmp$", r"\1\2", os.fspath(where))
        where = f" while writing {where}" if where else f" while writing into {self.path}"
        try:
            read_checkpoint(self.path / CHECKPOINT)
        except ConfigError:  # nothing a resume could start from: free the space this run took
            shutil.rmtree(self.path, ignore_errors=True)
            return f"no space left on device{where}; removed {self.path}; free some space and run again"
        return (
            f"no space left on device{where}; the last checkpoint in {self.path} is intact: free some space, "
            "then resume=true continues"
        )

    # --- files ----------------------------------------------------------------------------------------------------
    def save_config(self, yaml_text: str) -> None:
        atomic_write(self.path / "config.yaml", lambda tmp: Path(tmp).write_text(yaml_text))

    def save_image(self, name: str, image) -> Path:
        return save_image(image, self.path / name)

    def warn(self, message: str) -> None:
        """One line on stderr now, and a line of ``warnings.txt`` in the finished folder."""
        print(f"semstyle: warning: {message}", file=sys.stderr)
        self.warnings.append(message)

    def _check_divergence(self, scale: int, image: torch.Tensor) -> None:
        losses = [row["total"] for row in self.log.rows if row["scale"] == scale]
        start = self._previous_image
        if start is not None and start.shape[-2:] != image.shape[-2:]:
            start = torch.nn.functional.interpolate(start.float(), size=tuple(image.shape[-2:]), mode="nearest")
        reason = divergence.diagnose(losses, image, start)
        if reason:
            lr = (self.fingerprint or {}).get("lr")
            now = f" (now {lr:g})" if isinstance(lr, (int, float)) else ""
            self.warn(
                f"the optimisation diverged at scale {scale} ({image.shape[-1]}x{image.shape[-2]} px): {reason}; "
                f"try a smaller lr{now}"
            )
        self._previous_image = image

    def save_checkpoint(self, tensors: dict[str, torch.Tensor], **meta) -> None:
        """Tensors plus string-able metadata (e.g. the index of the last finished scale).

        A checkpoint of a finished scale (``image`` and ``scale=``) is first checked for divergence
        (:func:`semstyle.divergence.diagnose`).
        """
        # clone: safetensors refuses tensors that share memory (reconstruct's image is also its last reconstruction)
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
        if "image" in tensors and "scale" in meta:
            self._check_divergence(int(meta["scale"]), tensors["image"])
        meta["log"] = json.dumps(self.log.rows)
        meta["warnings"] = json.dumps(self.warnings)
        if self.fingerprint is not None:
            meta["fingerprint"] = fp.dumps(self.fingerprint)
        meta["sha256"] = tensors_digest(tensors)
        atomic_write(
            self.path / CHECKPOINT, lambda tmp: save_file(tensors, tmp, metadata={k: str(v) for k, v in meta.items()})
        )

    def load_checkpoint(self) -> tuple[dict[str, torch.Tensor], dict[str, str]] | None:
        """The saved checkpoint when resuming (read and checked on entering), else None."""
        if not self.resume or self._saved is None:
            return None
        tensors, meta = self._saved
        meta = dict(meta)
        self.log.rows = json.loads(meta.pop("log", "[]"))
        self.warnings = json.loads(meta.pop("warnings", "[]"))
        meta.pop("fingerprint", None)
        meta.pop("sha256", None)
        self._previous_image = tensors.get("image")
        return dict(tensors), meta

    def finish(self) -> None:
        atomic_write(self.path / "losses.csv", lambda tmp: Path(tmp).write_text(self.log.to_csv()))
        if self.log.rows:
            atomic_write(self.path / "losses.png", lambda tmp: self.log.plot(tmp))
        if self.warnings:
            atomic_write(
                self.path / WARNINGS, lambda tmp: Path(tmp).write_text("".join(w + "\n" for w in self.warnings))
            )
        (self.path / CHECKPOINT).unlink(missing_ok=True)
        if self.final.is_dir():  # an empty folder the user made beforehand
            self.final.rmdir()
        self.path.rename(self.final)
        self.path = self.final
