"""Value and file checks shared by the method schemas and the command line; each raises a one-line error
(:mod:`semstyle.errors`), and none loads torch."""

from __future__ import annotations

import errno
import importlib.resources
import os
import re
import warnings
from contextlib import contextmanager
from pathlib import Path

from omegaconf import ListConfig, OmegaConf

from ..errors import ConfigError, ImageError, SemstyleError, check
from .vocab import IMAGE_SUFFIXES, SHIPPED_MODELS, SWEEP_FILE, VIDEO_SUFFIXES


def is_list(value) -> bool:
    return isinstance(value, (list, tuple, ListConfig))


def check_number(cfg, key: str, lo=None, hi=None, integer: bool = False, lo_open: bool = False) -> None:
    """``cfg[key]`` (dotted key) is a number within [lo, hi] (``(lo, hi]`` when ``lo_open``)."""
    value = OmegaConf.select(cfg, key)
    if isinstance(value, str) and not integer:  # YAML 1.1 reads "1e9" (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
        else:
            OmegaConf.update(cfg, key, value)
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    check(ok_type and not isinstance(value, bool), f"{key}: must be {kind}, got {value!r}")
    if lo is not None:
        check(value > lo if lo_open else value >= lo, f"{key}: must be {'>' if lo_open else '>='} {lo}, got {value}")
    if hi is not None:
        check(value <= hi, f"{key}: must be <= {hi}, got {value}")


def check_choice(cfg, key: str, choices) -> None:
    value = OmegaConf.select(cfg, key)
    check(value in choices, f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")


def check_bool(cfg, key: str) -> None:
    value = OmegaConf.select(cfg, key)
    check(isinstance(value, bool), f"{key}: must be true or false, got {value!r}")


def numbers(values, key: str) -> list[float]:
    """A list of non-negative numbers, as floats."""
    check(is_list(values), f"{key}: must be a list of numbers, got {values!r}")
    for v in values:
        check(isinstance(v, (int, float)) and not isinstance(v, bool), f"{key}: must be numbers, got {v!r}")
        check(v >= 0, f"{key}: must be >= 0, got {v}")
    return [float(v) for v in values]


def header_size(path, what: str) -> tuple[int, int]:
    """``(H, W)`` of an image file from its header, EXIF rotation applied, as the loader will decode it; read once
    per process (the keypoint and size checks ask for the same images)."""
    key = _file_key(path)
    if key not in _HEADER_SIZES:
        with open_image(path, what) as image:
            w, h = image.size
            rotated = image.getexif().get(0x0112) in (5, 6, 7, 8)  # EXIF orientations that swap the sides
        _HEADER_SIZES[key] = (w, h) if rotated else (h, w)
    return _HEADER_SIZES[key]


def check_run_folder(out_dir, key: str = "out_dir") -> None:
    """A run folder can be made at ``out_dir`` (None: a new timestamped one, nothing to check) and nothing is there
    yet; a one-line :class:`ConfigError` naming ``key`` otherwise."""
    if out_dir is not None:
        check_output_path(out_dir, key, folder=True)
        check_new_folder(out_dir, key)


def not_found(path: Path, what: str = "file not found") -> str:
    """``what``, and for a relative path the folder it was looked for in: configs are often run from another one."""
    return what if path.is_absolute() else f"{what} (relative to {Path.cwd()})"


def check_file(path, what: str) -> None:
    """``path`` is a file: a one-line :class:`SemstyleError` naming ``what`` when it is missing or a folder."""
    path = Path(path)
    if not path.is_file():
        raise SemstyleError(f"{what} {path}: " + ("is a folder, not a file" if path.is_dir() else not_found(path)))


def open_image(path, what: str):
    """Pillow's image of ``path`` with only its header read (``.load()`` decodes the pixels); one-line
    :class:`ImageError` naming ``what`` for an empty value, a missing, empty or unreadable file, or a header that
    claims too many pixels."""
    from PIL import Image  # here, so that `semstyle --help` does not load Pillow

    if path is None or (isinstance(path, str) and path.strip() == ""):
        raise ImageError(f"{what}: no file given (the value is empty)")
    if not isinstance(path, (str, os.PathLike)):
        raise ImageError(f"{what}: expected an image file path, got {type(path).__name__} {path!r}")
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{what} {path}: {not_found(path)}")
    if path.is_dir():
        raise ImageError(f"{what} {path}: is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ImageError(f"{what} {path}: file is empty (0 bytes)")
    with image_errors(path, what):
        return Image.open(path)


def check_image(path, what: str) -> None:
    """``path`` is an image whose pixels decode to the end (:func:`open_image`, then a cheap decode): a truncated or
    corrupt file answers in one line before torch loads, as an unreadable header does.

    The decode costs a fraction of the loader's: a JPEG is decoded at 1/8 scale (Pillow's ``draft``: its
    entropy-coded data is still read to the end, only the inverse DCT shrinks), a PNG's chunks are read and their
    CRCs checked (``verify``) without inflating the pixels; other formats are decoded. 35 and 25 ms for a
    6000x4000 JPEG and PNG on a 2-core AMD EPYC, against 160 and 750 ms for full decodes. A file is decoded once
    per process.
    """
    key = _file_key(path)
    if key in _DECODED:
        return
    with open_image(path, what) as image:
        with image_errors(path, what):
            if image.format == "JPEG":
                image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
            elif image.format == "PNG":
                image.verify()
            else:
                image.load()
    _DECODED.add(key)


# The files check_image has decoded and the header sizes header_size has read in this process, by _file_key: the
# command line checks before torch loads, and the library functions it then calls check again for their other
# callers; a sweep's runs share their images. A file written since is read again.
_DECODED: set[tuple[str, int, int]] = set()
_HEADER_SIZES: dict[tuple[str, int, int], tuple[int, int]] = {}


def _file_key(path) -> tuple[str, int, int] | None:
    """``(real path, size, modification time)`` of a file; None when it cannot be read (:func:`open_image` then
    says why)."""
    try:
        stat = os.stat(path)
    except (OSError, TypeError, ValueError):
        return None
    return os.path.realpath(path), stat.st_size, stat.st_mtime_ns


@contextmanager
def image_errors(path, what: str):
    """What Pillow raises opening or decoding ``path``, as one-line :class:`ImageError` naming ``what``.

    Pillow only warns between ``MAX_IMAGE_PIXELS`` and twice that; here a file claiming that many pixels is refused
    before decoding (a few hundred bytes can claim gigabytes), as one that claims more always is.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(
            f"{what} {path}: claims {_claimed_size(e)}, over the limit of "
            f"{Image.MAX_IMAGE_PIXELS:,} pixels (PIL.Image.MAX_IMAGE_PIXELS); a decompression bomb or "
            "a corrupt header"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{what} {path}: not a readable image ({e.__class__.__name__}: {_one_line(e)})") from None


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _claimed_size(error: Exception) -> str:
    """``N pixels`` from Pillow's bomb message ("Image size (N pixels) exceeds limit of ...")."""
    found = re.search(r"\((\d+) pixels\)", str(error))
    return f"{int(found.group(1)):,} pixels" if found else "too many pixels"


def check_new_folder(path, key: str) -> None:
    """Nothing is at ``path`` yet but an empty folder: runs are never overwritten."""
    p = Path(path)
    check(
        not (any(p.iterdir()) if p.is_dir() else p.exists()),
        f"{key} {p}: already exists and is not empty; choose another {key} (runs are never overwritten)",
    )


def check_output_path(path, key: str, folder: bool = False) -> None:
    """A :class:`ConfigError` naming ``key`` unless ``path`` can be created: a new folder (``folder=True``, made
    with its parents) or a file (replaced if it exists). Nothing is created.

    Catches what would otherwise fail after the work is done, or in a traceback: the current folder (``.``), a
    path whose parent is a file, an existing file where a folder is wanted (or the reverse), a read-only or
    pseudo file system such as ``/proc``.
    """
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise ConfigError(f"{key}: must be a {'folder' if folder else 'file'} path, got {path!r}")
    p = Path(os.fspath(path)).expanduser()
    if p.name in ("", ".", ".."):
        raise ConfigError(
            f"{key} {path}: is the current folder or its parent, not a new {'folder' if folder else 'file'}; name one"
        )
    if p.exists() or p.is_symlink():
        if folder and not p.is_dir():
            raise ConfigError(f"{key} {path}: is a file; a run folder is wanted there")
        if not folder and p.is_dir():
            raise ConfigError(f"{key} {path}: is a folder; name a file")
    parent = p.absolute().parent
    while not parent.exists():  # the nearest existing ancestor is where a folder would be made
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{key} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{key} {path}: cannot write in {parent} (permission denied)")
    try:
        stat = os.statvfs(parent)
    except OSError:
        return
    if stat.f_flag & os.ST_RDONLY:
        raise ConfigError(f"{key} {path}: cannot write in {parent} ({os.strerror(errno.EROFS).lower()})")
    if _pseudo_fs(parent):
        raise ConfigError(f"{key} {path}: cannot write in {parent} (a {_pseudo_fs(parent)} pseudo file system)")


_PSEUDO = {"proc", "sysfs", "devpts", "cgroup", "cgroup2", "debugfs", "securityfs", "pstore", "bpf", "tracefs"}


def _pseudo_fs(path: Path) -> str | None:
    """The type of the pseudo file system (proc, sysfs, ...) ``path`` lies on, from /proc/mounts; None otherwise."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    best, kind = "", None
    resolved = str(path.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, parts[2]
    return kind if kind in _PSEUDO else None


def list_images(sources, key: str = "data") -> list[str]:
    """Image files of ``sources`` (files, or folders searched non-recursively), sorted per folder; a one-line
    :class:`ConfigError` names a source that is missing or a folder without images."""
    files: list[str] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            check(found, f"{key}: folder {path} has no images ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        else:
            check(path.is_file(), f"{key}: {path} {not_found(path, 'is not a file or folder')}")
            files.append(str(path))
    check(files, f"{key}: no training images given")
    return files


def expand_inputs(inputs) -> list[Path]:
    """Files given directly, plus the images and videos of each folder (non-recursive, sorted); one-line errors for
    a missing path, an empty folder or a file that is neither an image nor a video."""
    check(len(inputs) > 0, "stylize: give at least one image, folder or video")
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES
            )
            check(found, f"input folder {path}: has no images or videos")
            files += found
        else:
            check(path.is_file(), f"input {path}: {not_found(path, 'not found')}")
            check(
                path.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES,
                f"input {path}: not an image or video file (suffixes {', '.join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)})",
            )
            files.append(path)
    return files


def model_file(model, key: str = "model") -> Path:
    """``model`` as an existing file: a path, or the name of a bundled model (:data:`.vocab.SHIPPED_MODELS`); a
    one-line :class:`ConfigError` naming ``key`` otherwise."""
    path = Path(model)
    if not path.exists() and str(model) in SHIPPED_MODELS:
        path = Path(str(importlib.resources.files("semstyle") / "assets" / SHIPPED_MODELS[str(model)]))
    check(path.is_file(), f"{key} {path}: not found (give a .safetensors file or one of {', '.join(SHIPPED_MODELS)})")
    return path


def check_stylize_inputs(model, inputs, out_dir, size: int | None, batch: int) -> list[Path]:
    """The input files of ``semstyle stylize`` (:func:`expand_inputs`; images checked by :func:`check_image`, videos
    by :func:`open_video`), once its model file, output folder, size and batch are checked; a one-line error
    otherwise."""
    check(size is None or 16 <= int(size) <= 8192, f"size: must be an integer in [16, 8192], got {size!r}")
    check(batch >= 1, f"batch: must be >= 1, got {batch}")
    check(not Path(out_dir).is_file(), f"out: {out_dir} is a file, not a folder")
    model_file(model)
    files = expand_inputs(inputs)
    for f in files:
        if f.suffix.lower() in IMAGE_SUFFIXES:
            check_image(f, "input image")
        else:
            open_video(f)[0].release()
    return files


def open_video(path):
    """``(capture, first frame)`` of a video OpenCV can decode (``cv2.VideoCapture``, the frame BGR ``(H, W, 3)``
    uint8); a one-line :class:`ConfigError` otherwise. OpenCV loads here, not torch."""
    # FFmpeg's own log lines ("moov atom not found") would follow our one-line error on stderr; quiet them before
    # OpenCV's FFmpeg backend starts (it reads the variable once, when the first video is opened)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import cv2  # here: 0.2 s that only commands reading videos pay

    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read() if capture.isOpened() else (False, None)
    if not ok or frame is None:
        capture.release()
        raise ConfigError(f"input video {path}: cannot be read (not a video OpenCV can decode, or no frames)")
    return capture, frame


def check_sweep_folder(path) -> Path:
    """The ``sweep.json`` of a sweep folder (or ``path`` itself when it names that file); a one-line
    :class:`ConfigError` when there is none."""
    path = Path(path)
    file = path if path.name == SWEEP_FILE else path / SWEEP_FILE
    check(file.is_file(), f"{file.parent}: not a sweep folder (no {SWEEP_FILE})")
    return file
