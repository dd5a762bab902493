"""Inference with a trained model file: images, folders of images and videos, in one pass of the network each.

Images of the same output size go through the network together (``batch`` at a time). Videos are read and written
with OpenCV frame by frame (``mp4v`` in an ``.mp4``); OpenCV does not carry audio, so the output has none.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from ..conf.checks import check_stylize_inputs, open_video
from ..conf.vocab import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from ..core.allocator import keep_freed_memory
from ..core.encoder import resolve_device, resolve_precision
from ..core.image import atomic_write, load_image, save_image
from ..errors import ConfigError
from .model_file import load_model
from .networks import FeedForward


def _autocast(precision: str, device: torch.device):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


class Stylizer:
    """A loaded model with its device and precision; ``__call__`` maps ``(B, 3, H, W)`` in [0, 1] to an output at
    long side ``size`` (default: the input's long side), from the stage trained nearest that size
    (:meth:`FeedForward.output_stage`; the later stages are not run), or to every stage's output with the last at
    ``size`` (``all_scales``)."""

    def __init__(self, model, device: str = "auto", precision: str = "auto"):
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.net, self.meta = model if isinstance(model, tuple) else load_model(model, self.device)
        self.net: FeedForward = self.net.to(self.device)
        if self.device.type == "cpu":
            self.net = self.net.to(memory_format=torch.channels_last)  # oneDNN's native layout (core/encoder.py)
            # its full-size maps are 30-130 MB at 512-1024 px: without this the kernel zeroes them afresh on each
            # image (AVX2 kernels, fp32, 1024 px: Multimodal 0.87 -> 0.53 s, Johnson 2.71 -> 1.84 s;
            # docs/feedforward.md)
            keep_freed_memory()

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, size: int | None = None, all_scales: bool = False):
        size = max(images.shape[-2:]) if size is None else int(size)
        x = images.to(self.device)
        if self.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        stage = -1 if all_scales else self.net.output_stage(size)
        with _autocast(self.precision, self.device):
            outputs = self.net(x, size, stage)
        outputs = [o.float().clamp(0, 1).cpu().contiguous() for o in outputs]
        return outputs if all_scales else outputs[-1]


def _output_path(out_dir: Path, source: Path, suffix: str, taken: set) -> Path:
    path = out_dir / f"{source.stem}{suffix}"
    n = 1
    while path in taken or path.exists():  # never overwrite: a second tubingen.jpg becomes tubingen-1.png
        path = out_dir / f"{source.stem}-{n}{suffix}"
        n += 1
    taken.add(path)
    return path


def stylize_video(stylizer: Stylizer, path: Path, out: Path, size: int | None, progress: bool = True) -> Path:
    """Stylise every frame of ``path`` into ``out`` (``mp4v``), at the same frame rate; no audio."""
    cap, frame = open_video(path)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    writer = None
    bar = tqdm(total=count, desc=path.name, unit="frame", disable=not progress, leave=False, dynamic_ncols=True)

    def write(tmp: str) -> None:
        nonlocal writer, frame
        try:
            ok = True
            while ok:
                rgb = torch.from_numpy(frame[..., ::-1].astype(np.float32) / 255.0).permute(2, 0, 1)[None]
                styled = stylizer(rgb, size)[0]
                bgr = (styled.permute(1, 2, 0).numpy()[..., ::-1] * 255.0).round().astype(np.uint8)
                if writer is None:
                    h, w = bgr.shape[:2]
                    writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                    if not writer.isOpened():
                        raise ConfigError(f"output {out}: OpenCV cannot write an mp4v video here")
                writer.write(np.ascontiguousarray(bgr))
                bar.update(1)
                ok, frame = cap.read()
        finally:
            if writer is not None:
                writer.release()
            cap.release()
            bar.close()

    return atomic_write(out, write, suffix=".mp4")


def stylize_files(
    model,
    inputs,
    out_dir="stylized",
    size: int | None = None,
    batch: int = 4,
    device: str = "auto",
    precision: str = "auto",
    progress: bool = True,
) -> list[Path]:
    """Stylise images, folders and videos with a model file; returns the written files (``OUT/<stem>.png``,
    ``OUT/<stem>.mp4``). Inputs are checked before the model is loaded."""
    files = check_stylize_inputs(model, inputs, out_dir, size, batch)  # videos too: one fails now, not at the end
    out_dir = Path(out_dir)
    stylizer = Stylizer(model, device, precision)
    images = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
    videos = [f for f in files if f.suffix.lower() in VIDEO_SUFFIXES]
    loaded = [(f, load_image(f, what="input image")) for f in images]
    written, taken = [], set()
    groups: dict[tuple, list] = {}
    for f, image in loaded:
        groups.setdefault(tuple(image.shape[-2:]), []).append((f, image))
    bar = tqdm(total=len(loaded), desc="images", unit="img", disable=not progress or not loaded, leave=False)
    for group in groups.values():
        for i in range(0, len(group), batch):
            chunk = group[i : i + batch]
            outputs = stylizer(torch.cat([image for _, image in chunk]), size)
            for (f, _), out in zip(chunk, outputs):
                written.append(save_image(out[None], _output_path(out_dir, f, ".png", taken)))
            bar.update(len(chunk))
    bar.close()
    for v in videos:
        written.append(stylize_video(stylizer, v, _output_path(out_dir, v, ".mp4", taken), size, progress))
    return written
