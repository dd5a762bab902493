"""Metrics of finished runs, comparable across methods, sizes and precisions.

:func:`evaluate` scores one run folder against its content and style images and writes ``metrics.json`` beside
its ``output.png``; :func:`collect` gathers the runs of a sweep (or any run folders) into ``metrics.csv`` and
``metrics.md``. Command line: ``semstyle eval RUN_OR_SWEEP... [--against CONTENT STYLE]``.

Every image metric is computed on ONE reference setting, whatever the run used: the Caffe VGG-19 with max pooling
(the network as trained) in fp32 on the given device, and images resized to long side ``size`` (default 256; the
content is resized to the output's exact height and width). So a bf16 STROTSS run at 512 px and an fp32 Gatys run
at 256 px are scored alike. Images are ``(1, 3, H, W)`` RGB in [0, 1]; ``O`` is the output, ``C`` the content,
``S`` the style, ``F_l(x)`` the layer-``l`` features ``(1, N_l, h, w)`` of ``x``.

=====================  ============================================================================  ===========
key                    formula                                                                       better
=====================  ============================================================================  ===========
``content_distance``   ``mean((F_l(O) − F_l(C))²)`` at ``l = conv4_2`` (Gatys et al. 2016, eq. 1,   lower
                       as a mean: :func:`semstyle.losses.content.content_loss`)
``style_distance``     ``Σ_l ¼ N_l⁻² Σ(G_l(O) − G_l(S))² / 5`` over conv1_1 … conv5_1, ``G = F Fᵀ/M`` lower
                       (Gatys eq. 4-5, :func:`semstyle.losses.gram.gram_loss`; w_l = 1/5)
``ssim``               mean SSIM of ``O`` and ``C`` over pixels and RGB channels (Wang et al. 2004;  higher
                       kornia: 11×11 Gaussian window, σ 1.5, C₁ = 0.01², C₂ = 0.03²)
``psnr``               ``10 log₁₀(1 / mean((O − C)²))`` dB, capped at 100 dB for identical images    higher
``color_distance``     sliced Wasserstein-1 distance of the CIE Lab colour distributions of ``O``    lower
                       and ``S``: ``mean_θ ∫₀¹ |Q_O,θ(t) − Q_S,θ(t)| dt`` over 32 fixed unit
                       directions ``θ`` in Lab, ``Q`` the quantile function of the pixels projected
                       on ``θ`` (256 nearest-rank quantiles); in Lab units
``perceptual_distance``  ``mean_l mean_hw ‖f̂_l(O) − f̂_l(C)‖²`` over relu1_2, relu2_2, relu3_4,       lower
                       relu4_4, relu5_4, ``f̂`` the features unit-normalised over channels at each
                       pixel (LPIPS without its learned weights, Zhang et al. 2018, eq. 1); in [0, 2]
``region_fidelity``    ``1 − Σ_k a_k ‖μ_k(O) − μ_k(S)‖₂ / √3``: ``μ_k`` the mean RGB colour of       higher
                       region ``k`` (target map for ``O``, style map for ``S``), ``a_k`` the region's
                       share of the target map; in [0, 1]. Doodle and guided STROTSS runs only
``keypoint_error``     DST's ``mean_i ‖p_i + θ_i − p'_i‖₂`` at the end of the run (``dst.json``),    lower
                       rescaled from px at the run's size to px at the long side ``size``. DST only
``seconds``            wall time of the run (``run.json``)                                           lower
``peak_mb``            peak resident memory of the process that ran it, MB (``run.json``)            lower
``steps``              optimisation steps done (``run.json``)
=====================  ============================================================================  ===========

Keys that do not apply to a run are absent (no content image: no ``ssim``/``psnr``/``content_distance``/
``perceptual_distance``; no maps: no ``region_fidelity``). A run with several style images (a blend) gets
``style_distance`` and ``color_distance`` as the blend-weighted sums over its styles (the weights of its config,
normalised as the run normalised them), and ``style_distance_1``, ``style_distance_2``, ... per style.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

import kornia
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from ..conf.checks import is_list
from ..conf.gatys import GATYS_CONTENT_LAYERS, GATYS_STYLE_LAYERS
from ..conf.vocab import METRIC_SIZE, METRICS, SWEEP_FILE, is_metric
from ..core.encoder import vgg19_encoder
from ..core.image import atomic_write, load_image, resize
from ..core.semantic import load_map, region_means, semantic_masks
from ..errors import SemstyleError, check
from ..losses.content import content_loss
from ..losses.gram import gram_loss, gram_matrix
from .sweep import load_sweep

CONTENT_LAYERS = tuple(GATYS_CONTENT_LAYERS)  # Gatys et al. 2016, Sec. 2.2
STYLE_LAYERS = tuple(GATYS_STYLE_LAYERS)  # Gatys et al. 2016, Sec. 3, w_l = 1/5
# the last ReLU of each VGG-19 block, as LPIPS takes the last ReLU of each block of its VGG-16
PERCEPTUAL_LAYERS = ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4")
PSNR_CAP = 100.0  # dB; identical images would give +inf, which JSON and CSV cannot hold
COLOR_DIRECTIONS = 32  # ample for 3-D colour (the slices' mean converges fast); each costs a sort of the pixels
COLOR_QUANTILES = 256

HIGHER_IS_BETTER = {"ssim", "psnr", "region_fidelity"}
METRICS_FILE = "metrics.json"


# -- the metrics as functions of images ----------------------------------------------------------------------------


def ssim(image: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean SSIM of ``(1, 3, H, W)`` images in [0, 1] (kornia, 11-px Gaussian window); 1 for identical images.

    >>> x = torch.rand(1, 3, 32, 32)
    >>> round(ssim(x, x), 6)
    1.0
    """
    return float(kornia.metrics.ssim(image.float(), reference.float(), window_size=11, max_val=1.0).mean())


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR in dB of ``(1, 3, H, W)`` images in [0, 1], capped at :data:`PSNR_CAP` for identical images."""
    mse = float(F.mse_loss(image.float(), reference.float()))
    return PSNR_CAP if mse <= 10 ** (-PSNR_CAP / 10) else float(kornia.metrics.psnr(image, reference, max_val=1.0))


def _features(image: torch.Tensor, layers, device: str) -> dict[str, torch.Tensor]:
    # the reference encoder: max pooling (the network as trained), fp32, whatever the run used
    with torch.no_grad():
        return vgg19_encoder("max", "fp32", device)(image.float(), layers)


def _content(a: dict, b: dict) -> float:
    return float(sum(content_loss(a[layer], b[layer]) for layer in CONTENT_LAYERS) / len(CONTENT_LAYERS))


def _style(a: dict, b: dict) -> float:
    terms = [gram_loss(gram_matrix(a[layer]), gram_matrix(b[layer])) for layer in STYLE_LAYERS]
    return float(sum(terms) / len(terms))


def _perceptual(a: dict, b: dict) -> float:
    total = 0.0
    for layer in PERCEPTUAL_LAYERS:
        fa = F.normalize(a[layer], dim=1, eps=1e-10)
        fb = F.normalize(b[layer], dim=1, eps=1e-10)
        total += float((fa - fb).pow(2).sum(dim=1).mean())
    return total / len(PERCEPTUAL_LAYERS)


def content_distance(image: torch.Tensor, content: torch.Tensor, device: str = "cpu") -> float:
    """Gatys eq. 1 as a mean over :data:`CONTENT_LAYERS`: ``mean((F(O) − F(C))²)``, images of the same size."""
    return _content(_features(image, CONTENT_LAYERS, device), _features(content, CONTENT_LAYERS, device))


def style_distance(image: torch.Tensor, style: torch.Tensor, device: str = "cpu") -> float:
    """Gatys eq. 5 with w_l = 1/5 over :data:`STYLE_LAYERS` (size-normalised Grams: any two sizes compare)."""
    return _style(_features(image, STYLE_LAYERS, device), _features(style, STYLE_LAYERS, device))


def perceptual_distance(image: torch.Tensor, reference: torch.Tensor, device: str = "cpu") -> float:
    """LPIPS's distance without learned weights (Zhang et al. 2018, eq. 1 with w_l = 1): per layer, the squared
    distance of the channel-unit-normalised features, averaged over pixels, then over :data:`PERCEPTUAL_LAYERS`.
    Images of the same size; 0 for identical images, at most 2 (ReLU features are non-negative)."""
    return _perceptual(_features(image, PERCEPTUAL_LAYERS, device), _features(reference, PERCEPTUAL_LAYERS, device))


def _color_directions() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)  # fixed: every run is scored on the same slices
    return F.normalize(torch.randn(COLOR_DIRECTIONS, 3, generator=generator), dim=1)


def color_distance(image: torch.Tensor, style: torch.Tensor) -> float:
    """Sliced Wasserstein-1 distance between the CIE Lab colour distributions of two ``(1, 3, H, W)`` images (any
    sizes), in Lab units: 0 for the same colours in any arrangement; grows as the hues or tones move apart.

    Each of 32 fixed directions projects both images' Lab pixels to 1-D; the 1-D W1 distance is the mean absolute
    difference of their quantile functions (256 nearest-rank quantiles); the result is the mean over directions.
    Why not a 3-D histogram distance: bins make the result depend on the bin size, and a shift smaller than a bin
    is invisible, whereas the transport distance grows steadily with the shift (Rabin et al. 2011, sliced W).
    """
    directions = _color_directions()
    levels = (torch.arange(COLOR_QUANTILES, dtype=torch.float64) + 0.5) / COLOR_QUANTILES
    quantiles = []
    for x in (image, style):
        lab = kornia.color.rgb_to_lab(x.float().clamp(0, 1))[0].reshape(3, -1)
        projected = directions @ lab  # (D, H·W)
        n = projected.shape[1]
        ranks = (levels * n - 0.5).round().long().clamp(0, n - 1)  # nearest-rank quantiles: one sort, no interpolation
        quantiles.append(projected.sort(dim=1).values[:, ranks])  # (D, Q)
    return float((quantiles[0] - quantiles[1]).double().abs().mean())


def region_fidelity(
    image: torch.Tensor,
    target_map: torch.Tensor,
    style: torch.Tensor,
    style_map: torch.Tensor,
    max_colors: int = 8,
    min_fraction: float = 0.005,
) -> float:
    """``1 − Σ_k a_k ‖μ_k(O) − μ_k(S)‖₂ / √3``: how well each region of the output takes its colour from the same
    region of the style. ``target_map`` has the output's size and ``style_map`` the style's; regions are matched as
    a doodle run matches them (:func:`semstyle.core.semantic.semantic_masks`). Target colours without a style
    counterpart are left out. 1 when every region has its style region's mean colour."""
    style_masks, target_masks, _ = semantic_masks(style_map, target_map, max_colors, min_fraction, unmatched="ignore")
    share = target_masks.sum(dim=(0, 2, 3))
    present = (share > 0) & (style_masks.sum(dim=(0, 2, 3)) > 0)
    check(bool(present.any()), "region fidelity: the target map and the style map share no region", SemstyleError)
    share = share[present] / share[present].sum()
    gap = (region_means(image, target_masks) - region_means(style, style_masks))[present].norm(dim=1)
    return float(1.0 - (share * gap).sum() / math.sqrt(3.0))


# -- reading a run --------------------------------------------------------------------------------------------------


def _config(run_dir: Path):
    path = run_dir / "config.yaml"
    check(path.is_file(), f"{run_dir}: not a run folder (no config.yaml)")
    try:
        return OmegaConf.load(path)
    except Exception as e:  # a hand-edited or truncated file
        raise SemstyleError(f"{path}: cannot be read as YAML ({str(e).splitlines()[0]})") from None


def _get(cfg, key: str):
    return OmegaConf.select(cfg, key, default=None)


def _references(cfg) -> tuple[str | None, list[str], list[float]]:
    """The content image, the style images and their blend weights named by a run's config, per method."""
    if _get(cfg, "method") == "reconstruct":
        return None, [], []
    content, style = _get(cfg, "content"), _get(cfg, "style")  # one vocabulary: the same keys in every method
    styles = [str(s) for s in style] if is_list(style) else ([str(style)] if style else [])
    weights = [1.0] * len(styles)
    if len(styles) > 1 and _get(cfg, "style_weights") is not None:
        weights = [float(w) for w in _get(cfg, "style_weights")]
    if sum(weights) > 0 and _get(cfg, "style_weights_normalize") is not False:
        weights = [w / sum(weights) for w in weights]
    return (str(content) if content else None), styles, weights


def _maps(cfg) -> tuple[str | None, str | None]:
    """``(target map, style map)`` of a doodle or guided STROTSS run, else Nones."""
    return _get(cfg, "content_map"), _get(cfg, "style_map")


def _file(path: str, key: str, run_dir: Path) -> str:
    """A config path as given, else relative to the run folder's parent (a sweep moved with its inputs)."""
    for candidate in (Path(path), run_dir.parent / path):
        if candidate.is_file():
            return str(candidate)
    raise SemstyleError(f"{run_dir}: {key} {path} does not exist (give the images with --against CONTENT STYLE)")


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SemstyleError(f"{path}: cannot be read as JSON ({e})") from None


def evaluate(run_dir, content=None, style=None, size: int = METRIC_SIZE, device: str = "cpu") -> dict[str, float]:
    """Score a finished run folder; writes ``metrics.json`` there and returns ``{key: value}`` (see the module
    docstring for each key's formula).

    Args:
        run_dir: a finished run folder (``config.yaml``, ``output.png``; ``run.json``, ``dst.json`` when present).
        content, style: image paths to score against; default the images the run's config names (``content`` /
            ``style``, the same keys in every method). ``style`` may be a list (a blend).
        size: the long side every image is resized to; the same for every run that should compare.
        device: where the reference encoder runs (``cpu``, ``cuda``); fp32 either way.
    """
    run_dir = Path(run_dir)
    check(run_dir.is_dir(), f"{run_dir}: no such run folder")
    check(isinstance(size, int) and 32 <= size <= 4096, f"size: must be an integer in [32, 4096], got {size!r}")
    check(not run_dir.name.endswith(".partial"), f"{run_dir}: an unfinished run (.partial); finish or resume it first")
    cfg = _config(run_dir)
    output_path = run_dir / "output.png"
    check(output_path.is_file(), f"{run_dir}: has no output.png (did the run finish?)")
    own_content, own_styles, weights = _references(cfg)
    if content is not None:
        own_content = str(content)
    if style is not None:
        own_styles = [str(s) for s in style] if isinstance(style, (list, tuple)) else [str(style)]
        weights = [1.0 / len(own_styles)] * len(own_styles) if len(own_styles) != len(weights) else weights
    # every input is read and checked before any encoder work
    content_file = _file(own_content, "content", run_dir) if own_content else None
    style_files = [_file(s, "style", run_dir) for s in own_styles]
    target_map, style_map = _maps(cfg)
    if target_map and style_map and len(style_files) == 1:
        target_map, style_map = _file(target_map, "target map", run_dir), _file(style_map, "style map", run_dir)
    else:
        target_map = style_map = None
    metrics: dict[str, float] = {}

    if _get(cfg, "method") != "reconstruct":  # its output.png is a captioned figure, not one image
        output = load_image(output_path, size, what="output")
        # one encoder pass per image, for every layer any metric reads
        out_features = _features(output, CONTENT_LAYERS + STYLE_LAYERS + PERCEPTUAL_LAYERS, device)
        if content_file is not None:
            reference = resize(load_image(content_file, what="content image"), tuple(output.shape[-2:]))
            content_features = _features(reference, CONTENT_LAYERS + PERCEPTUAL_LAYERS, device)
            metrics["ssim"] = ssim(output, reference)
            metrics["psnr"] = psnr(output, reference)
            metrics["content_distance"] = _content(out_features, content_features)
        styles = [load_image(s, size, what="style image") for s in style_files]
        if styles:
            per_style = [_style(out_features, _features(s, STYLE_LAYERS, device)) for s in styles]
            metrics["style_distance"] = sum(w * d for w, d in zip(weights, per_style))
            metrics["color_distance"] = sum(w * color_distance(output, s) for w, s in zip(weights, styles))
        if content_file is not None:
            metrics["perceptual_distance"] = _perceptual(out_features, content_features)
        if target_map is not None:
            tmap = load_map(target_map, tuple(output.shape[-2:]), what="target map")
            smap = load_map(style_map, tuple(styles[0].shape[-2:]), what="style map")
            semantic = _get(cfg, "semantic") or {}
            metrics["region_fidelity"] = region_fidelity(
                output,
                tmap,
                styles[0],
                smap,
                int(semantic.get("max_colors", 8)),
                float(semantic.get("min_fraction", 0.005)),
            )
        dst = run_dir / "dst.json"
        if dst.is_file():
            error = _json(dst).get("alignment_error_px", {}).get("end")
            if error is not None:
                side = max(load_image(output_path, what="output").shape[-2:])
                metrics["keypoint_error"] = float(error) * size / side
        if len(styles) > 1:
            metrics.update({f"style_distance_{i + 1}": d for i, d in enumerate(per_style)})

    record = run_dir / "run.json"
    if record.is_file():
        facts = _json(record)
        for key in ("seconds", "peak_mb", "steps"):
            if isinstance(facts.get(key), (int, float)):
                metrics[key] = facts[key]
    # what the scores were computed against, so that collect() never mixes runs scored at different sizes
    reference = {"size": size, "content": content_file, "style": style_files, "own": content is None and style is None}
    text = json.dumps({**metrics, "reference": reference}, indent=1) + "\n"
    atomic_write(run_dir / METRICS_FILE, lambda tmp: Path(tmp).write_text(text))
    return metrics


# -- many runs: a sweep's tables -----------------------------------------------------------------------------------


def is_sweep(path) -> bool:
    return (Path(path) / SWEEP_FILE).is_file()


def sweep_runs(path) -> list[dict]:
    """The runs of a sweep folder as ``{"name", "folder" (absolute Path), "overrides", "state", "error"}``."""
    path = Path(path)
    runs = []
    for entry in load_sweep(path)["runs"]:
        folder = Path(entry.get("folder") or Path("runs") / str(entry["name"]))
        runs.append(
            {
                "name": str(entry["name"]),
                "folder": folder if folder.is_absolute() else path / folder,
                "overrides": {str(k): str(v) for k, v in (entry.get("overrides") or {}).items()},
                "state": entry.get("state", "done"),
                "error": entry.get("error"),
            }
        )
    return runs


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def scored(key: str) -> bool:
    """A metric with a better direction (not the run facts seconds, peak_mb, steps)."""
    return is_metric(key) and key not in ("seconds", "peak_mb", "steps")


def columns(rows: list[dict]) -> list[str]:
    """The run name and swept values (in order of appearance), then the metric keys any row has, in METRICS order
    (a blend's ``style_distance_1``, ``_2``, ... after ``style_distance``)."""
    names: list[str] = []
    for row in rows:
        names += [k for k in row if k not in names]
    per_style = sorted((k for k in names if is_metric(k) and k not in METRICS), key=lambda k: int(k.rsplit("_", 1)[1]))
    ordered = []
    for key in METRICS:
        ordered += [key] if key in names else []
        ordered += per_style if key == "style_distance" else []
    return [k for k in names if not is_metric(k)] + ordered


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table; metric headers carry ↑ (higher is better) or ↓."""
    names = columns(rows)
    arrows = {k: f"{k} {'↑' if k in HIGHER_IS_BETTER else '↓'}" if scored(k) else k for k in names}
    lines = ["| " + " | ".join(arrows[c] for c in names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(_format(row.get(c)).replace("|", "\\|") for c in names) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_tables(rows: list[dict], folder) -> tuple[Path, Path]:
    """``metrics.csv`` and ``metrics.md`` of ``rows`` in ``folder``: one row per run, its swept values, then the
    metric keys in :data:`METRICS` order (those any row has)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns(rows), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in writer.fieldnames})
    folder = Path(folder)
    csv_path = atomic_write(folder / "metrics.csv", lambda tmp: Path(tmp).write_text(buffer.getvalue()))
    md_path = atomic_write(folder / "metrics.md", lambda tmp: Path(tmp).write_text(markdown(rows)))
    return csv_path, md_path


def collect(
    paths,
    content=None,
    style=None,
    size: int = METRIC_SIZE,
    device: str = "cpu",
    out=None,
    force: bool = False,
) -> list[dict]:
    """Rows of metrics for run folders and sweep folders, evaluating runs that have no ``metrics.json`` yet, or one
    scored at another ``size`` (and all of them with ``force`` or with ``content``/``style`` given).

    A sweep folder contributes one row per finished run (``run`` name, then its swept ``key=value``s), and gets its
    own ``metrics.csv`` and ``metrics.md``. A plain run folder contributes one row named by its folder. With
    ``out``, the tables of all rows are written there too. Runs of a sweep that failed or did not finish are
    left out (the sweep's own table of failures names them).
    """
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    check(len(paths) > 0, "eval: give at least one run or sweep folder")
    for p in paths:
        check(p.is_dir(), f"{p}: no such run or sweep folder")
        check(is_sweep(p) or (p / "config.yaml").is_file(), f"{p}: neither a run folder nor a sweep folder")

    def score(folder: Path) -> dict:
        stored = folder / METRICS_FILE
        if stored.is_file() and not force and content is None and style is None:
            scores = _json(stored)
            reference = scores.pop("reference", None) or {}
            if reference.get("size") == size and reference.get("own"):  # scored as asked: against its own images
                return scores
        return evaluate(folder, content, style, size, device)

    rows: list[dict] = []
    for p in paths:
        if is_sweep(p):
            sweep_rows = [
                {"run": r["name"], **r["overrides"], **score(r["folder"])}
                for r in sweep_runs(p)
                if r["state"] == "done" and r["folder"].is_dir()
            ]
            write_tables(sweep_rows, p)
            rows += sweep_rows
        else:
            rows.append({"run": p.name, **score(p)})
    if out is not None:
        write_tables(rows, out)
    return rows


__all__ = ["evaluate", "collect", "write_tables", "markdown", "sweep_runs", "is_sweep", "HIGHER_IS_BETTER"]
