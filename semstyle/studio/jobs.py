"""One run at a time: the run thread, its progress messages and frames, Stop, and the busy answer.

The thread calls the engine's run API (``semstyle.api.run``) with a callback that records every event as a small
JSON-able message and, every ``frame_every`` steps, the current image as a JPEG; the server streams both to the
page. Stop sets a flag that the callback turns into the engine's ``StopRun`` at the next step, so the engine saves
the current image as ``output.png`` and finishes the run folder normally.
"""

from __future__ import annotations

import io
import math
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

from ..errors import SemstyleError

# Finished jobs kept in memory (their messages and last frame); older ones are only on disk.
KEEP_JOBS = 8


class Busy(SemstyleError):
    """A run is already going; the message says which and how far it is."""


def _jpeg(image) -> bytes:
    from ..core.image import to_pil

    buf = io.BytesIO()
    to_pil(image).save(buf, format="JPEG", quality=88)
    return buf.getvalue()


@dataclass
class Job:
    """One studio run: its messages (in order), its latest frame, and how it ended."""

    id: str
    config: dict
    overrides: list[str]
    on_finish: Callable[["Job", str], None] | None = None  # (job, "done" | "stopped") once the folder exists
    frame_every: int = 5
    messages: list[dict] = field(default_factory=list)
    frame: tuple[int, bytes] | None = None  # (frame number, JPEG)
    state: str = "queued"  # queued | running | done | stopped | error
    stopped: bool = False  # the callback raised StopRun (a Stop pressed after the last step changes nothing)
    error: str | None = None
    run_dir: str | None = None
    started: float = field(default_factory=time.time)
    seconds: float | None = None
    last: dict = field(default_factory=dict)  # the latest progress message
    stop_requested: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    thread: threading.Thread | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "stopped", "error")

    def callback(self, event) -> None:
        """The engine callback (runs in the run thread)."""
        from ..engine.events import StopRun

        loss = float(event.loss)
        msg = {
            "kind": event.kind,
            "scale": event.scale,
            "scales": event.scales,
            "size": list(event.size) if event.size is not None else None,
            "step": event.step,
            "steps": event.steps,
            "loss": loss if math.isfinite(loss) else None,
            "terms": {k: float(v) for k, v in (event.terms or {}).items() if math.isfinite(float(v))},
            "elapsed": round(time.time() - self.started, 2),
        }
        frame = None
        if event.kind == "step" and (
            event.step % self.frame_every == 0 or event.step == event.steps or self.stop_requested.is_set()
        ):
            image = event.current_image()
            if image is not None:
                frame = _jpeg(image)
        with self.lock:
            self.messages.append(msg)
            self.last = msg
            if frame is not None:
                self.frame = ((self.frame[0] + 1) if self.frame else 1, frame)
        if event.kind == "step" and self.stop_requested.is_set():
            self.stopped = True
            raise StopRun()

    def snapshot(self, index: int) -> tuple[list[dict], tuple[int, bytes] | None, bool]:
        """Messages from ``index`` on, the latest frame, and whether the job has finished (all under the lock, so a
        reader that sees ``finished`` has seen every message)."""
        with self.lock:
            return self.messages[index:], self.frame, self.finished

    def end_message(self) -> dict:
        return {"state": self.state, "error": self.error, "run": self.id, "seconds": self.seconds}

    def progress_line(self) -> str:
        m = self.last
        if not m or m.get("scales") is None:
            return "starting"
        line = f"phase {m['scale'] + 1}/{m['scales']}"
        if m["kind"] == "step":
            line += f", step {m['step']}/{m['steps']}"
        return line

    def work(self) -> None:
        """The run thread: ``semstyle.api.run`` with :meth:`callback`; every outcome ends in ``state``."""
        self.state = "running"
        try:
            from ..api import run

            path = run(self.config, self.overrides, callbacks=[self.callback])
            self.run_dir = str(path)
            state, error = ("stopped" if self.stopped else "done"), None
        except SemstyleError as e:
            state, error = "error", str(e)
        except Exception as e:  # an internal error: the page gets one line, the server's log the traceback
            traceback.print_exc()
            state, error = "error", f"internal error ({type(e).__name__}: {e}); the server's log has the details"
        self.seconds = round(time.time() - self.started, 2)
        if self.on_finish is not None and state != "error":
            try:
                self.on_finish(self, state)
            except Exception as e:
                traceback.print_exc()
                state, error = "error", f"the run finished but its folder could not be completed ({e})"
        with self.lock:
            self.state, self.error = state, error


class Runner:
    """Holds the current job; refuses a second one while it runs."""

    def __init__(self):
        self.lock = threading.Lock()
        self.jobs: dict[str, Job] = {}
        self.current: Job | None = None

    def busy_message(self, job: Job) -> str:
        return (
            f"busy: a painting is already running (run {job.id}, {job.progress_line()}, "
            f"{time.time() - job.started:.0f} s); wait for it to finish or press Stop"
        )

    def start(self, job: Job) -> Job:
        with self.lock:
            if self.current is not None and not self.current.finished:
                raise Busy(self.busy_message(self.current))
            self.current = job
            self.jobs[job.id] = job
            for old in list(self.jobs)[:-KEEP_JOBS]:  # finished runs stream their end from studio.json
                del self.jobs[old]
            job.state = "running"
            job.thread = threading.Thread(target=job.work, name=f"studio-run-{job.id}", daemon=True)
            job.thread.start()
        return job

    def stop(self) -> Job | None:
        """Ask the current job to stop at its next step; returns it (None when nothing runs)."""
        with self.lock:
            job = self.current
        if job is None or job.finished:
            return None
        job.stop_requested.set()
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)
