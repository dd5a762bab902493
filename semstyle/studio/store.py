"""The studio's folder and the checks on what the browser sends: no web framework here.

Layout under the studio root (default ``runs/studio``)::

    styles/<style id>/style.png, map.png, meta.json   a painting, its semantic map, palette and region names
    photos/<photo id>/photo.png                          an underlay photo (doodle-with-content mode)
    inputs/<run id>/doodle.png, doodle_map.png           the doodle as drawn (RGBA, transparent = unpainted) and
                                                         as the map the run reads (every pixel a palette colour)
    runs/<run id>/                                       ordinary run folders (config.yaml, output.png, ...)

Every name on disk is made here (a content hash, a bundled file's stem, a timestamp); a file name sent by the
browser is never used, not even as a display name. Uploads are decoded in memory and re-encoded as PNG, so
nothing the browser sent is stored as it came.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..core import semantic
from ..core.image import atomic_write, resize, save_image
from ..errors import ConfigError, ImageError, SemstyleError, check

# An upload larger than this is refused before it is decoded (a phone photo is 3-12 MB).
MAX_UPLOAD_BYTES = 25 * 2**20
# Decoded pixel count limit: a small file can decode to a huge image ("decompression bomb").
MAX_PIXELS = 50_000_000
FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP", "BMP": "BMP", "GIF": "GIF", "TIFF": "TIFF"}
# Largest size the studio paints; a painting or photo is stored at this long side at most, since the doodle
# method resizes its style to each phase's long side (style_scale 1) and never needs more.
MAX_SIZE = 1024
MIN_SIZE = 32
# The doodle's bitmap: the long side of the canvas the painter draws on (maps are area-pooled to each VGG layer's
# size by semantic.masks_at, so a finer map than the result is never needed).
CANVAS_LONG_SIDE = 512
MAX_CANVAS_SIDE = 2048
# The map reader's defaults (doodle DEFAULTS semantic.max_colors / min_fraction): the studio's palette is
# exactly what the run will find in the style map.
MAX_COLORS = 8
MIN_FRACTION = 0.005
# The coarsest phase's short side (style and doodle) stays at least this: relu4_1 is 1/8 of the image and the
# patch loss needs 3x3 patches there (the engine refuses smaller), so small sizes run fewer phases.
MIN_PHASE_SIDE = 32
# Two shapes are "the same" within this relative aspect difference (rounding when a side is resized).
ASPECT_TOLERANCE = 0.02

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
RUN_ID_RE = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{4}$")

# Run-folder files the page may download (names fixed here; the rest of a run folder is not served).
RUN_FILES = (
    "output.png",
    "config.yaml",
    "doodle.png",
    "doodle_map.png",
    "sheet.png",
    "palette.png",
    "losses.csv",
    "losses.png",
    "studio.json",
)

# Quality presets: what one Paint button runs. Phases and steps per phase; "fast" also takes CNNMRF's strides
# (every second patch on both sides, ~1.6x faster per step: docs/doodle.md) and every preset starts each region
# from its style region's mean colour (init=regions: a short run otherwise spends its steps finding colours and
# stays greyer, docs/doodle.md "Limitations"). "best" is the doodle method's own default schedule (3 x 100
# steps, the schedule of configs/doodle/monet.yaml), whose PatchMatch search scores as the exact search does.
PRESETS = {
    "fast": ["phases=2", "steps=30", "mrf.style_stride=2", "mrf.stride=2", "init=regions"],
    "balanced": ["phases=3", "steps=50", "init=regions"],
    "best": ["phases=3", "steps=100", "init=regions"],
}


class NotFound(SemstyleError):
    """A style, photo, run or file the request names does not exist (HTTP 404)."""


def bundled_styles_dir() -> Path:
    """The public-domain paintings shipped with semstyle: ``semstyle/assets/styles`` in the package, or
    ``assets/styles`` at the repository's root."""
    package = Path(__file__).resolve().parents[1]
    for folder in (package / "assets" / "styles", package.parent / "assets" / "styles"):
        if folder.is_dir():
            return folder
    return package / "assets" / "styles"


def _hash(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()[:16]


def check_id(value: str, what: str, pattern: re.Pattern = ID_RE) -> str:
    check(isinstance(value, str) and pattern.match(value) is not None, f"{what}: {value!r} is not a valid id")
    return value


def decode_upload(data: bytes, what: str) -> Image.Image:
    """Decode an uploaded image in memory and check it: size in bytes, format, pixel count, that it decodes.

    Returns the Pillow image, EXIF-rotated. Every failure is one :class:`ImageError` line naming ``what``.
    """
    check(len(data) > 0, f"{what}: the file is empty", ImageError)
    check(
        len(data) <= MAX_UPLOAD_BYTES,
        f"{what}: the file is {len(data) / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB",
        ImageError,
    )
    kinds = ", ".join(FORMATS.values())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            check(img.format in FORMATS, f"{what}: a {img.format} file is not accepted; use {kinds}", ImageError)
            w, h = img.size
            check(
                w * h <= MAX_PIXELS, f"{what}: {w}x{h} is too many pixels (limit {MAX_PIXELS // 10**6} MP)", ImageError
            )
            img.load()
    except ImageError:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombWarning,
        Image.DecompressionBombError,
    ) as e:
        if isinstance(e, UnidentifiedImageError):
            raise ImageError(f"{what}: not an image file (accepted: {kinds})") from None
        raise ImageError(f"{what}: the image could not be decoded ({e.__class__.__name__}: {e})") from None
    check(min(img.size) >= 1, f"{what}: the image has zero size", ImageError)
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block should not make the pixels unusable
        return img


def _to_tensor(img: Image.Image) -> torch.Tensor:
    from ..core.image import pil_to_array

    return torch.from_numpy(np.ascontiguousarray(pil_to_array(img))).permute(2, 0, 1)[None].contiguous()


def _fit(image: torch.Tensor, long_side: int = MAX_SIZE) -> torch.Tensor:
    return resize(image, long_side) if max(image.shape[-2:]) > long_side else image


def _same_aspect(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return abs(a[0] / a[1] - b[0] / b[1]) <= ASPECT_TOLERANCE * (b[0] / b[1])


def _hex(color) -> str:
    return "#" + "".join(f"{int(round(float(v) * 255)):02x}" for v in color)


@dataclass
class Style:
    """A painting with its map: what a doodle is painted with."""

    id: str
    folder: Path
    meta: dict = field(default_factory=dict)

    @property
    def image_path(self) -> Path:
        return self.folder / "style.png"

    @property
    def map_path(self) -> Path:
        return self.folder / "map.png"

    @property
    def palette(self) -> torch.Tensor:
        """``(K, 3)`` RGB in [0, 1], in the run's channel order."""
        return torch.tensor(self.meta["palette"], dtype=torch.float32) / 255

    def describe(self) -> dict:
        m = self.meta
        return {
            "id": self.id,
            "name": m["name"],
            "width": m["width"],
            "height": m["height"],
            "map": m["map"],
            "regions": m.get("regions"),
            "palette": [
                {"color": _hex(np.array(c) / 255), "name": n, "mean": _hex(np.array(mean) / 255), "share": s}
                for c, n, mean, s in zip(m["palette"], m["names"], m["means"], m["shares"])
            ],
            "image_url": f"/api/styles/{self.id}/style.png",
            "map_url": f"/api/styles/{self.id}/map.png",
            "photo_map_url": f"/api/styles/{self.id}/photo_map.png"
            if (self.folder / "photo_map.png").is_file()
            else None,
            "notes": m.get("notes", []),
        }


@dataclass
class Doodle:
    """A posted doodle after :func:`snap_doodle`."""

    drawn: np.ndarray  # (H, W, 4) uint8 as posted (alpha 0 = unpainted)
    map: np.ndarray  # (H, W, 3) uint8, every pixel a palette colour
    warnings: list[str]


def snap_doodle(
    rgba: np.ndarray, palette: torch.Tensor, names: list[str] | None = None, min_fraction: float = MIN_FRACTION
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Turn a drawn doodle into a map the run reads exactly as it was meant.

    Args:
        rgba: ``(H, W, 4)`` uint8; pixels with alpha < 128 are unpainted.
        palette: ``(K, 3)`` the style's palette in [0, 1].
        names: region names for the messages.

    Returns ``(map (H, W, 3) uint8, labels (H, W) int64, warnings)``:

    - a painted pixel whose colour is not in the palette (an image editor's anti-aliasing, a JPEG, another
      style's colours) is snapped to the nearest palette colour, with a warning saying how much was snapped;
    - a region covering less than ``min_fraction`` of the doodle would be taken for edge noise by the map reader
      (``extract_palette``) and its pixels given to the region nearest *in colour*; the studio gives them to the
      nearest painted region *in space* instead, as it does with unpainted pixels (a warning says so).

    A doodle with nothing painted is a :class:`ConfigError`.
    """
    check(rgba.ndim == 3 and rgba.shape[2] == 4, "doodle: expected an RGBA image")
    names = names or [f"region {i + 1}" for i in range(len(palette))]
    h, w = rgba.shape[:2]
    painted = rgba[..., 3] >= 128
    check(bool(painted.any()), "doodle: nothing is painted; paint at least one region")
    out: list[str] = []
    pal8 = (palette.float() * 255).round()
    colors = torch.from_numpy(rgba[..., :3][painted].astype(np.float32))
    dist, nearest = torch.cdist(colors, pal8).min(dim=1)
    off = dist > 0.5
    if bool(off.any()):
        codes = np.unique(colors[off].numpy().astype(np.int64) @ np.array([65536, 256, 1]))
        example = ", ".join(f"({c >> 16}, {(c >> 8) & 255}, {c & 255})" for c in codes[:3])
        out.append(
            f"{int(off.sum())} painted pixels ({100 * float(off.float().mean()):.1f}%) in "
            f"{len(codes)} colour(s) not in the palette (e.g. {example}) were snapped to the nearest "
            "palette colour"
        )
    labels = np.full((h, w), -1, dtype=np.int64)
    labels[painted] = nearest.numpy()
    counts = np.bincount(labels[painted], minlength=len(palette))
    tiny = [k for k in range(len(palette)) if 0 < counts[k] < min_fraction * h * w]
    if tiny:
        labels[np.isin(labels, tiny)] = -1
        which = ", ".join(f"{names[k]!r} ({100 * counts[k] / (h * w):.2f}%)" for k in tiny)
        out.append(
            f"region(s) {which} cover less than {100 * min_fraction:g}% of the doodle, which the map reader "
            "takes for edge noise: their pixels join the nearest painted region"
        )
    empty = labels < 0
    check(not bool(empty.all()), "doodle: what is painted is too small to be a region; paint larger areas")
    if bool(empty.any()):
        from scipy.ndimage import distance_transform_edt

        unpainted = float((~painted).mean())
        if unpainted > 0:
            out.append(
                f"{100 * unpainted:.1f}% of the canvas was left unpainted: each such pixel takes the region "
                "of the nearest painted pixel"
            )
        _, (iy, ix) = distance_transform_edt(empty, return_indices=True)
        labels = labels[iy, ix]
    return pal8.numpy().astype(np.uint8)[labels], labels, out


class Store:
    """The studio root: styles, photos, doodles and run folders."""

    def __init__(self, root: str | Path, styles_dir: str | Path | None = None):
        self.root = Path(root)
        self.bundled = Path(styles_dir) if styles_dir is not None else bundled_styles_dir()
        for sub in ("styles", "photos", "inputs", "runs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # ---- styles -------------------------------------------------------------------------------------------------

    def bundled_names(self) -> list[str]:
        if not self.bundled.is_dir():
            return []
        exts = {".jpg", ".jpeg", ".png", ".webp"}
        return sorted(p.stem for p in self.bundled.iterdir() if p.suffix.lower() in exts and ID_RE.match(p.stem))

    def _bundled_file(self, name: str) -> Path:
        check(
            name in self.bundled_names(),
            f"style: no bundled painting named {name!r}; available: {', '.join(self.bundled_names()) or 'none'}",
            NotFound,
        )
        return next(p for p in self.bundled.iterdir() if p.stem == name)

    def style(self, style_id: str) -> Style:
        check_id(style_id, "style")
        folder = self.root / "styles" / style_id
        check((folder / "meta.json").is_file(), f"style {style_id}: not found (pick or upload a style again)", NotFound)
        return Style(style_id, folder, json.loads((folder / "meta.json").read_text()))

    def styles(self) -> list[dict]:
        out = []
        for folder in sorted((self.root / "styles").iterdir()):
            if (folder / "meta.json").is_file() and ID_RE.match(folder.name):
                out.append(self.style(folder.name).describe())
        return out

    def add_style(
        self,
        image: torch.Tensor,
        name: str,
        source: str,
        style_id: str,
        map_image: torch.Tensor | None = None,
        regions: int = 4,
        extra: dict | None = None,
    ) -> Style:
        """Store a painting ``(1, 3, H, W)`` with its map: ``map_image`` (same shape up to rounding), or automatic
        maps of ``regions`` regions (``semantic.auto_map``, colour + position, as ``--auto-maps``).

        The palette is ``semantic.extract_palette`` of the stored map with the doodle method's defaults, i.e. the
        palette the run will find; each entry gets a name and the mean colour of its region in the painting."""
        folder = self.root / "styles" / style_id
        if (folder / "meta.json").is_file():
            return self.style(style_id)
        image = _fit(image)
        if map_image is None:
            check(
                isinstance(regions, int) and 2 <= regions <= MAX_COLORS,
                f"regions: automatic maps need 2 to {MAX_COLORS} regions, got {regions!r}",
            )
            masks = semantic.auto_map(image, regions, "color")
            smap = semantic.masks_to_map(masks)
        else:
            ih, iw = image.shape[-2:]
            mh, mw = map_image.shape[-2:]
            check(
                _same_aspect((mh, mw), (ih, iw)),
                f"style map: is {mw}x{mh} but the painting is {iw}x{ih}; a map must have its painting's shape",
                ImageError,
            )
            smap = resize(map_image, (ih, iw), mode="nearest")
        palette = semantic.extract_palette(smap, MAX_COLORS, MIN_FRACTION)
        masks = semantic.map_to_masks(smap, palette)
        means = semantic.region_means(image, masks)
        shares = masks.mean((0, 2, 3))
        tmp = folder.with_name(folder.name + f".tmp{secrets.token_hex(3)}")
        tmp.mkdir(parents=True)
        save_image(image, tmp / "style.png")
        save_image(smap, tmp / "map.png")
        kind = "auto" if map_image is None else "joint" if source.startswith("joint:") else "upload"
        meta = {
            "name": name,
            "source": source,
            "map": kind,
            "regions": None if kind == "upload" else regions,
            "width": int(image.shape[-1]),
            "height": int(image.shape[-2]),
            "palette": (palette * 255).round().int().tolist(),
            "means": (means * 255).round().int().clamp(0, 255).tolist(),
            "shares": [round(float(s), 4) for s in shares],
            "names": [f"region {i + 1}" for i in range(len(palette))],
        }
        for file_name, picture in (extra or {}).items():
            save_image(picture, tmp / file_name)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            tmp.rename(folder)
        except OSError:  # the same style stored meanwhile (two tabs): keep that one
            shutil.rmtree(tmp, ignore_errors=True)
        return self.style(style_id)

    def add_bundled(self, name: str, regions: int = 4) -> Style:
        from ..core.image import load_image

        path = self._bundled_file(name)
        style_id = f"{name}-auto{regions}"
        if (self.root / "styles" / style_id / "meta.json").is_file():
            return self.style(style_id)
        image = load_image(path, what="bundled style")
        return self.add_style(image, name.replace("_", " "), f"bundled:{name}", style_id, regions=regions)

    def add_upload(self, image_bytes: bytes, map_bytes: bytes | None = None, regions: int = 4) -> Style:
        """A painting uploaded from the browser, with its map or with automatic maps."""
        img = decode_upload(image_bytes, "style image")
        map_image = None
        if map_bytes:
            map_image = self._decode_map(map_bytes)
        key = _hash(image_bytes, map_bytes or str(regions).encode())
        style_id = f"upload-{key}"
        if (self.root / "styles" / style_id / "meta.json").is_file():
            return self.style(style_id)
        name = f"uploaded painting {time.strftime('%H:%M:%S')}"
        return self.add_style(_to_tensor(img), name, "upload", style_id, map_image, regions)

    def _decode_map(self, data: bytes) -> torch.Tensor:
        """An uploaded semantic map, with ``semantic.load_map``'s checks (no greyscale, no transparency)."""
        img = decode_upload(data, "style map")
        buf = self.root / "inputs" / f".map-{secrets.token_hex(6)}.png"
        try:
            img.save(buf, format="PNG")  # lossless, keeps the mode, so load_map sees what was sent
            return semantic.load_map(buf, what="style map")
        except ImageError as e:
            raise ImageError(str(e).replace(f"style map {buf}", "style map")) from None
        finally:
            buf.unlink(missing_ok=True)

    def add_joint(self, style: Style, photo_id: str, regions: int = 4) -> Style:
        """The painting of ``style`` and the photo segmented together into ``regions`` regions (``auto_maps`` on
        both, as ``--auto-maps``: region k is the same kind of area in each), stored as a new style whose folder
        also holds ``photo_map.png``, the photo's map in the same colours: a starting doodle for the photo."""
        from ..core.image import load_image

        check(
            isinstance(regions, int) and 2 <= regions <= MAX_COLORS,
            f"regions: automatic maps need 2 to {MAX_COLORS} regions, got {regions!r}",
        )
        photo = self.photo(photo_id)
        style_id = f"{style.id[:40]}-{photo_id.removeprefix('photo-')[:8]}-joint{regions}"
        if (self.root / "styles" / style_id / "meta.json").is_file():
            return self.style(style_id)
        painting = load_image(style.image_path, what="style image")
        picture = load_image(self.root / "photos" / photo["id"] / "photo.png", what="photo")
        style_masks, photo_masks = semantic.auto_maps([painting, picture], regions, "color")
        joint = self.add_style(
            painting,
            f"{style.meta['name']} + photo",
            f"joint:{style.id}+{photo['id']}",
            style_id,
            semantic.masks_to_map(style_masks),
            regions,
            extra={"photo_map.png": semantic.masks_to_map(photo_masks)},
        )
        # a region of the photo that the painting hardly has (dropped from its palette) has no patches to take
        kept = {tuple(c) for c in joint.meta["palette"]}
        colours = (semantic.AUTO_COLORS[:regions] * 255).round().int().tolist()
        lost = sum(float(photo_masks[0, k].mean()) for k in range(regions) if tuple(colours[k]) not in kept)
        if lost > 0:
            joint.meta["notes"] = [
                f"{100 * lost:.1f}% of the photo fell in a region the painting hardly has (under "
                f"{100 * MIN_FRACTION:g}% of it): those pixels take the nearest region in colour"
            ]
            atomic_write(joint.folder / "meta.json", lambda tmp: Path(tmp).write_text(json.dumps(joint.meta, indent=1)))
        return joint

    def rename_regions(self, style_id: str, names: list) -> Style:
        style = self.style(style_id)
        k = len(style.meta["palette"])
        check(
            isinstance(names, list) and len(names) == k and all(isinstance(n, str) for n in names),
            f"names: expected a list of {k} region names",
        )
        style.meta["names"] = [" ".join(n.split())[:40] or f"region {i + 1}" for i, n in enumerate(names)]
        atomic_write(style.folder / "meta.json", lambda tmp: Path(tmp).write_text(json.dumps(style.meta, indent=1)))
        return style

    # ---- photos -------------------------------------------------------------------------------------------------

    def add_photo(self, data: bytes) -> dict:
        img = decode_upload(data, "photo")
        photo_id = f"photo-{_hash(data)}"
        folder = self.root / "photos" / photo_id
        if not (folder / "photo.png").is_file():
            save_image(_fit(_to_tensor(img)), folder / "photo.png")
        return self.photo(photo_id)

    def photo(self, photo_id: str) -> dict:
        check_id(photo_id, "photo")
        path = self.root / "photos" / photo_id / "photo.png"
        check(path.is_file(), f"photo {photo_id}: not found (upload it again)", NotFound)
        w, h = Image.open(path).size
        return {"id": photo_id, "width": w, "height": h, "url": f"/api/photos/{photo_id}/photo.png"}

    # ---- doodles and runs ---------------------------------------------------------------------------------------

    def new_run_id(self) -> str:
        return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)

    def prepare_doodle(self, data: bytes, style: Style, photo_id: str | None = None) -> Doodle:
        """Decode a posted doodle (PNG from the canvas, or any image) and snap it to ``style``'s palette; with a
        photo, it is resized (nearest) to the photo's size, which the run needs (a target map has its content
        image's size)."""
        img = decode_upload(data, "doodle")
        w, h = img.size
        check(
            max(w, h) <= MAX_CANVAS_SIDE and min(w, h) >= 16,
            f"doodle: {w}x{h}; a doodle's sides must be 16 to {MAX_CANVAS_SIDE} px",
            ImageError,
        )
        rgba = np.asarray(img.convert("RGBA"))
        if photo_id is not None:
            p = self.photo(photo_id)
            check(
                _same_aspect((h, w), (p["height"], p["width"])),
                f"doodle: is {w}x{h} but the photo is {p['width']}x{p['height']}; the doodle must have the "
                "photo's shape",
                ImageError,
            )
            rgba = np.asarray(Image.fromarray(rgba).resize((p["width"], p["height"]), Image.NEAREST))
        mapped, _, notes = snap_doodle(rgba, style.palette, style.meta["names"])
        return Doodle(rgba, mapped, notes)

    def input_paths(self, run_id: str) -> tuple[Path, Path]:
        """Where a run's doodle is kept: as drawn, and as the map the run reads."""
        folder = self.root / "inputs" / check_id(run_id, "run", RUN_ID_RE)
        return folder / "doodle.png", folder / "doodle_map.png"

    def save_inputs(self, run_id: str, doodle: Doodle) -> tuple[Path, Path]:
        drawn, mapped = self.input_paths(run_id)
        drawn.parent.mkdir(parents=True, exist_ok=True)
        save_image(Image.fromarray(doodle.drawn, "RGBA"), drawn)
        save_image(Image.fromarray(doodle.map, "RGB"), mapped)
        return drawn, mapped

    def run_config(
        self,
        run_id: str,
        style: Style,
        doodle: Doodle,
        doodle_map: Path,
        size: int,
        preset: str,
        photo_id: str | None = None,
        steps: int | None = None,
    ) -> tuple[dict, list[str], list[str]]:
        """The config, overrides and notes of a studio run: the doodle method with the preset's schedule, with
        fewer phases where the preset's coarsest phase would be under :data:`MIN_PHASE_SIDE` (a note says so)."""
        check(
            isinstance(size, int) and MIN_SIZE <= size <= MAX_SIZE,
            f"size: must be an integer from {MIN_SIZE} to {MAX_SIZE} px, got {size!r}",
        )
        check(preset in PRESETS, f"preset: {preset!r} is not one of {', '.join(PRESETS)}")
        aspect = min(
            min(style.meta["width"], style.meta["height"]) / max(style.meta["width"], style.meta["height"]),
            min(doodle.map.shape[:2]) / max(doodle.map.shape[:2]),
        )
        wanted = int(next(o for o in PRESETS[preset] if o.startswith("phases=")).split("=")[1])
        phases = wanted
        while phases > 1 and size * aspect / 2 ** (phases - 1) < MIN_PHASE_SIDE:
            phases -= 1
        notes = []
        if phases != wanted:
            notes.append(
                f"at {size} px the run has {phases} phase(s) instead of {wanted}: a phase's short side must "
                f"be at least {MIN_PHASE_SIDE} px"
            )
        cfg = {
            "method": "doodle",
            "size": size,
            "progress": False,
            "out_dir": str(self.run_dir(run_id).resolve()),
            "style": str(style.image_path.resolve()),
            "style_map": str(style.map_path.resolve()),
            "content_map": str(doodle_map.resolve()),
        }
        overrides = [o for o in PRESETS[preset] if not o.startswith("phases=")] + [f"phases={phases}"]
        if photo_id is not None:  # doodle-with-content: start from the photo, as CNNMRF does (init: content)
            cfg["content"] = str((self.root / "photos" / photo_id / "photo.png").resolve())
            overrides = [o for o in overrides if not o.startswith("init=")] + ["init=content"]
        if steps is not None:
            check(
                isinstance(steps, int) and 1 <= steps <= 1000,
                f"steps: must be an integer from 1 to 1000, got {steps!r}",
            )
            overrides.append(f"steps={steps}")
        return cfg, overrides, notes

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / check_id(run_id, "run", RUN_ID_RE)

    def finish_run(self, run_id: str, info: dict) -> None:
        """Add the studio's files to a finished run folder: the doodle (as drawn and as a map) and ``studio.json``
        (style, photo, preset, region names: what "reopen doodle" needs)."""
        folder = self.run_dir(run_id)
        inputs = self.root / "inputs" / run_id
        for name in ("doodle.png", "doodle_map.png"):
            if (inputs / name).is_file():
                shutil.copyfile(inputs / name, folder / name)
        atomic_write(folder / "studio.json", lambda tmp: Path(tmp).write_text(json.dumps(info, indent=1)))

    def results(self) -> list[dict]:
        """Finished studio runs, newest first."""
        out = []
        for folder in sorted((self.root / "runs").iterdir(), reverse=True):
            if not (RUN_ID_RE.match(folder.name) and (folder / "output.png").is_file()):
                continue
            info = {}
            if (folder / "studio.json").is_file():
                try:
                    info = json.loads((folder / "studio.json").read_text())
                except ValueError:
                    info = {}
            files = {name: f"/api/runs/{folder.name}/files/{name}" for name in RUN_FILES if (folder / name).is_file()}
            out.append(
                {
                    "id": folder.name,
                    "state": info.get("state", "done"),
                    "style": info.get("style_name"),
                    "size": info.get("size"),
                    "preset": info.get("preset"),
                    "seconds": info.get("seconds"),
                    "files": files,
                    "reopen": "doodle.png" in files and "style" in info,
                }
            )
        return out

    def run_file(self, run_id: str, name: str) -> Path:
        check(name in RUN_FILES, f"file: {name!r} is not one a run folder offers")
        path = self.run_dir(run_id) / name
        check(path.is_file(), f"run {run_id}: has no {name}", NotFound)
        return path

    def studio_info(self, run_id: str) -> dict:
        path = self.run_file(run_id, "studio.json")
        try:
            return json.loads(path.read_text())
        except ValueError:
            raise ConfigError(f"run {run_id}: studio.json is not valid JSON") from None
