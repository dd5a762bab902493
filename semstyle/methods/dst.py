"""Deformable Style Transfer (Kim, Kolkin, Salavon & Shakhnarovich, ECCV 2020).

The stylised image ``X`` and the displacements ``θ`` of content keypoints ``P`` are optimised together; the output
is the warped image ``W(X, θ)`` (:mod:`semstyle.geometry.tps`, thin-plate spline with a fixed border):

    L = α·L_content(X, C) + L_style(X, S) + L_style(W(X, θ), S) + β·L_warp(P, P', θ) + γ·R_TV(f_θ)

``L_warp = mean_i ‖(p_i + θ_i) − p'_i‖₂`` (px at the final size), where the targets ``P'`` are the style keypoints
brought into the content frame by a least-squares similarity (Umeyama), and ``R_TV`` is the size-normalised total
variation of the warp's flow field (:func:`semstyle.losses.flow_tv.flow_tv`, DST's squared differences of the
per-pixel flow,
which do not change with the scale). The base losses are STROTSS's (``base: strotss``, as the paper) or Gatys's
Gram losses (``base: gram``). ``warp_weight = 0`` runs the base method alone, as DST's ``styletransfer.py`` does.

Keypoints come from DST-format files (``row, col`` per line, original pixels), from Neural Best-Buddies run inline
with DST's cleaning, or from face landmarks (``keypoints: faces``, the ``faces`` extra).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ..conf import load, scale_schedule
from ..conf.dst import BASE_DEFAULTS, DST
from ..conf.gatys import GATYS_CONTENT_LAYERS, GATYS_STYLE_LAYERS
from ..conf.keypoint_files import check_keypoint_pairs
from ..conf.sizes import check_method_sizes
from ..core.image import as_image, load_image, resize
from ..core.pyramid import LaplacianPyramid, high_pass
from ..engine import Engine, Objective, Problem, make_optimizer
from ..engine.runs import RunDir
from ..geometry import save_flow, tps_flow, warp_image
from ..geometry.keypoints import read_correspondences, similarity_align, write_correspondences, write_keypoints
from ..geometry.keypoints.clean import clean_points
from ..geometry.keypoints.landmarks import available as landmarks_available
from ..geometry.keypoints.landmarks import face_keypoints
from ..geometry.keypoints.nbb import nbb_keypoints
from ..losses import ContentLoss, GramLoss, TVLoss
from ..losses.flow_tv import flow_tv
from ..losses.strotss import SamplePoints, SelfSimilarityLoss, StrotssStyleLoss
from ..viz.points import draw_points, flow_picture

# Adam's step is lr·m̂/(√v̂ + eps); with eps far above any gradient of θ it becomes (lr/eps)·m̂, a gradient step with
# momentum. m̂ (Adam's moving average, β1 = 0.9) is 1/10 of SGD's momentum sum at steady state, hence lr = 10·eps·lr_sgd.
SGD_EPS = 1.0e4

# DST's STROTSS units (see _StrotssBase): Caffe VGG activations / 58 = torchvision's; the palette term's scale.
DST_FEATURE_SCALE = 1.0 / 58.0
DST_COLOR_SCALE = 6.8
DST_SIZE = 256  # β is for L_warp in px at DST's im_size 256 (job_example.sh)


def settings(cfg) -> dict:
    """The optimisation settings of a resolved config (the keys its base fills), by name, as plain values."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    return {**{key: plain[key] for key in BASE_DEFAULTS[cfg.base]}, "warp_lr": cfg.warp_lr}


# -- keypoints ---------------------------------------------------------------------------------------------------


def _nbb_pairs(content: torch.Tensor, style: torch.Tensor, cfg) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inline Neural Best-Buddies (``--fast``, as DST's job_example.sh) + DST's cleaning -> points in original
    pixels and activations."""
    found = nbb_keypoints(
        content,
        style,
        fast=True,
        size=cfg.nbb_size,
        precision=cfg.precision,
        device=cfg.device,
        conv=cfg.conv,
        progress=cfg.progress,
    )
    return clean_points(
        found.points_a,
        found.points_b,
        found.activation,
        tuple(content.shape[-2:]),
        tuple(style.shape[-2:]),
        max_num_points=cfg.max_points,
        b=cfg.min_point_distance,
        im_size=cfg.nbb_size,
    )


def get_keypoints(content: torch.Tensor, style: torch.Tensor, cfg) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``(content points, style points, source)``: ``(N, 2)`` (x, y) in each image's original pixels."""
    source = cfg.keypoints
    if source == "auto":
        source = "files" if cfg.content_keypoints is not None else "nbb"
    if source == "files":
        pa, pb, _ = read_correspondences(
            cfg.content_keypoints, cfg.style_keypoints, size_a=tuple(content.shape[-2:]), size_b=tuple(style.shape[-2:])
        )
        check_keypoint_pairs(pa, pb, f"keypoint files {cfg.content_keypoints}, {cfg.style_keypoints}")
        return pa, pb, "files"
    if source == "faces":
        if not landmarks_available():
            warnings.warn(
                "keypoints=faces: MediaPipe is not installed (the faces extra, docs/dst.md); using NBB", stacklevel=2
            )
        else:
            found = face_keypoints(content, style, cfg.max_points, cfg.min_point_distance, cfg.nbb_size)
            if found is not None:
                check_keypoint_pairs(*found, "face landmarks")
                return found[0], found[1], "faces"
            warnings.warn("keypoints=faces: no face found in the content or style image; using NBB", stacklevel=2)
    pa, pb, _ = _nbb_pairs(content, style, cfg)
    check_keypoint_pairs(pa, pb, "NBB keypoints")
    return pa, pb, "nbb"


# -- the base losses ---------------------------------------------------------------------------------------------


class _GramBase:
    """Gatys content (conv4_2) and Gram style terms on the pixels; ``X`` and ``W(X)`` share one batched VGG pass."""

    before_step: tuple = ()

    def __init__(self, encoder):
        self.encoder = encoder
        self.content = ContentLoss(GATYS_CONTENT_LAYERS)
        self.style = GramLoss(GATYS_STYLE_LAYERS)

    def style_weight(self, style_weight: float, alpha: float) -> float:
        return style_weight

    def set_targets(self, objective: Objective, content: torch.Tensor, style: torch.Tensor) -> None:
        with torch.no_grad():
            self.content.set_target(objective.features(content, self.content.layers))
            self.style.set_target(objective.features(style, self.style.layers))

    def upsample(self, previous: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        return resize(previous, tuple(content.shape[-2:]))

    def parameterise(self, image: torch.Tensor):
        x = image.clone().requires_grad_(True)
        return [x], lambda: x, lambda: x.clamp_(0, 1)


class _StrotssBase:
    """STROTSS's self-similarity content term and its REMD + moment + colour style terms (semstyle.losses.strotss),
    on a Laplacian-pyramid image, as DST's ``styletransfer.py``; ``X`` and ``W(X)`` are read at the same points."""

    def __init__(self, encoder, levels: int, samples: int, style_samples: int, seed: int, size: int):
        # DST runs STROTSS's losses on torchvision's VGG-16 with ImageNet-normalised input (vggfeatures.py), i.e.
        # Caffe activations / 58, not the paper-era 1/255 of semstyle.core.hypercolumn: its moment term is ~4x
        # (means) and ~20x (covariances) the paper-era one, and its weights (α 8) were set for that balance.
        self.encoder = encoder
        self.points = SamplePoints(samples, seed)
        self.content = SelfSimilarityLoss(self.points, feature_scale=DST_FEATURE_SCALE)
        self.style = StrotssStyleLoss(
            self.points, style_samples=style_samples, feature_scale=DST_FEATURE_SCALE, bf16=encoder.precision == "bf16"
        )
        self.before_step = (self.points.resample,)
        self.coarsest = size / 2**levels  # side of the pyramid's low-pass level at the final size (8 px at 256)

    def style_weight(self, style_weight: float, alpha: float) -> dict[str, float]:
        # DST's palette term is on ImageNet-normalised RGB (÷ std ~0.226) in an orthonormal YUV (RGB distances);
        # semstyle's on [0, 1] RGB in BT.601 YUV, whose distances are ~0.65 of RGB's: 1 / (0.226 · 0.65) ≈ 6.8.
        # It fades in as α shrinks (÷ max(α, 1), DST styletransfer.py).
        color = style_weight * DST_COLOR_SCALE / max(alpha, 1.0)
        return {"remd": style_weight, "moment": style_weight, "color": color}

    def set_targets(self, objective: Objective, content: torch.Tensor, style: torch.Tensor) -> None:
        with torch.no_grad():
            self.points.set_regions(content.shape[-2:], device=content.device)
            self.content.set_target(objective.features(content))
            self.style.set_target(objective.features(style))

    def upsample(self, previous: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """The previous scale's result plus the content's detail band it could not hold: DST keeps one pyramid of
        the content for all scales and uses only its coarser levels at first, so a new scale starts with the
        content's finest band (styletransfer.py: ``syn_lap_pyr(s_pyr[begin_ind:])``)."""
        return resize(previous, tuple(content.shape[-2:]), mode="bilinear") + high_pass(content)

    def parameterise(self, image: torch.Tensor):
        """DST decomposes the content once at the final size (``dec_lap_pyr(input_im, pyr_levs)``) and a coarse
        scale optimises only the levels at and below its size (``s_pyr[begin_ind:]``), so the low-pass level is
        8 px at every scale: 3 bands at 64 px, 4 at 128, 5 at 256. With SGD, a level's step grows with the area
        it covers (its gradient sums the pixels' under upsampling): a 5-level pyramid at 64 px, down to 2 px,
        moved the low frequencies ~16x further than DST's and washed the content out at the coarse scales."""
        levels = max(0, round(math.log2(max(image.shape[-2:]) / self.coarsest)))
        pyramid = LaplacianPyramid(image, levels).to(image.device)
        return list(pyramid.parameters()), pyramid, None


def base_objective(base, alpha: float, style_weight: float, warped: bool, tv_weight: float) -> Objective:
    """DST's objective over two views (Kim et al. 2020, eq. 7): ``α·content(X) + style(X) + style(W(X))``, the
    image ``X`` (view ``"image"``) and its warp (view ``"warped"``) encoded in one batched pass."""
    style = base.style_weight(style_weight, alpha)
    terms = {"content": (base.content, alpha), "style": (base.style, style)}
    if warped:
        terms["style_warped"] = (base.style, style, "warped")
    terms["tv"] = (TVLoss(), tv_weight)  # the Objective drops it at weight 0 (the STROTSS base)
    return Objective(base.encoder, terms, base.before_step)


# -- the method --------------------------------------------------------------------------------------------------


def min_jacobian(flow: torch.Tensor) -> float:
    """Smallest Jacobian determinant of the warp ``q -> q − flow(q)`` (forward differences): 1 = no change,
    below 0 = the warp folds the image over itself somewhere."""
    f = flow.detach()[0].double()
    fx, fy = f[:, :-1, 1:] - f[:, :-1, :-1], f[:, 1:, :-1] - f[:, :-1, :-1]  # d(flow)/dx, d(flow)/dy
    det = (1 - fx[0]) * (1 - fy[1]) - fx[1] * fy[0]
    return float(det.min())


def alignment_error(points: torch.Tensor, theta: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """DST's ``L_warp``: mean distance ``‖(p_i + θ_i) − p'_i‖₂`` (px); differentiable in ``θ``."""
    return (points + theta - targets).norm(dim=1).mean()


def scale_problem(
    base,
    content_s: torch.Tensor,
    style_s: torch.Tensor,
    previous: torch.Tensor | None,
    theta0: torch.Tensor,
    points: torch.Tensor,
    targets: torch.Tensor,
    final_width: int,
    alpha: float,
    opt: dict,
    cfg,
):
    """Set up one scale: targets, the image parameters started from ``previous`` (or the content), θ and the
    objective. Returns ``(param groups, objective() -> (total, terms), image_fn, project, theta)``."""
    hs, ws = content_s.shape[-2:]
    factor = ws / final_width  # final-size px -> this scale's px
    use_warp = opt["warp_weight"] > 0
    views_objective = base_objective(base, alpha, opt["style_weight"], use_warp, opt["tv_weight"])
    base.set_targets(views_objective, content_s, style_s)
    start = content_s if previous is None else base.upsample(previous, content_s)
    params, image_fn, project = base.parameterise(start)
    theta = theta0.clone().requires_grad_(use_warp)
    groups = [{"params": params}]
    if use_warp and opt["warp_optimizer"] == "adam" and opt["optimizer"] != "lbfgs":
        # θ on its own Adam, stepped after the image's step. DST's momentum SGD moves a keypoint by lr·β/N per step
        # (N keypoints): ~0.05 px at lr 0.3 on its 32-point example, so 3 x 150 steps end far short of where
        # β·L_warp and γ·R_TV balance (and twice as far with 71 points). Adam steps ~warp_lr px whatever N and
        # the weights (docs/dst.md, *Against the reference*).
        warp_opt = make_optimizer("adam", [theta], opt["warp_lr"])
        image_project = project

        def project():
            warp_opt.step()
            warp_opt.zero_grad(set_to_none=True)
            if image_project is not None:
                image_project()
    elif use_warp:
        group = {"params": [theta]} if opt["warp_lr"] is None else {"params": [theta], "lr": opt["warp_lr"]}
        if opt["warp_sgd"] and opt["optimizer"] == "adam":
            group.update(lr=10 * SGD_EPS * (opt["warp_lr"] or opt["lr"]), eps=SGD_EPS)
        groups.append(group)
    if opt["optimizer"] == "sgd":  # DST styletransfer.py: SGD with momentum 0.9 (per group: optimize() has no knob)
        for group in groups:
            group["momentum"] = opt["momentum"]
    if opt["optimizer"] == "lbfgs":
        groups = [{"params": [p for g in groups for p in g["params"]]}]

    def objective():
        x = image_fn()
        if not use_warp:
            return views_objective(x)
        flow = tps_flow(points * factor, theta * factor, (hs, ws), cfg.border_points, cfg.warp_grid)
        total, terms = views_objective({"image": x, "warped": warp_image(x, flow)})
        # px at DST's 256: R_TV is unit-free (a squared Jacobian), so L_warp in px of cfg.size would shift the
        # balance with the image size (at 64 px the warp would stop 4x earlier)
        warp = opt["warp_weight"] * alignment_error(points, theta, targets) * (DST_SIZE / cfg.size)
        warp_tv = opt["warp_tv_weight"] * flow_tv(flow)  # DST's four-direction TV, for which γ = 50 was set
        terms.update(warp=float(warp.detach()), warp_tv=float(warp_tv.detach()))
        return total + warp + warp_tv, terms

    return groups, objective, image_fn, project, theta


def make_base(cfg, encoder):
    """The base losses and image parameterisation of ``cfg.base``."""
    if cfg.base == "gram":
        return _GramBase(encoder)
    return _StrotssBase(encoder, cfg.pyramid_levels, cfg.samples, cfg.style_samples, cfg.seed, cfg.size)


def transfer(
    content: torch.Tensor,
    style: torch.Tensor,
    content_pts: torch.Tensor,
    style_pts: torch.Tensor,
    cfg,
    engine: Engine | None = None,
) -> dict[str, torch.Tensor]:
    """DST with a resolved config. Images ``(1, 3, H, W)`` in [0, 1]; keypoints ``(N, 2)`` (x, y) in each image's
    own pixels. Returns ``{"output", "stylized", "content_warped", "theta", "points", "targets", "flow"}`` at the
    final size (points in its pixels)."""
    check_keypoint_pairs(content_pts, style_pts, "keypoints")
    engine = engine or Engine(cfg)
    opt = settings(cfg)
    encoder = engine.encoder(opt["pooling"])
    device = encoder.device
    size = int(cfg.size)
    content_f = resize(content, size)
    style_f = resize(style, size)
    h, w = content_f.shape[-2:]
    # Keypoints at the final size (DST main.py: × im_size / max(w, h)); targets in the content frame.
    points = content_pts.float() * (size / max(content.shape[-2:]))
    style_scaled = style_pts.float() * (size / max(style.shape[-2:]))
    targets = similarity_align(style_scaled, points)
    margin = cfg.target_margin * size / 256
    targets = torch.stack([targets[:, 0].clamp(margin, w - 1 - margin), targets[:, 1].clamp(margin, h - 1 - margin)], 1)
    points, targets = points.to(device), targets.to(device)
    use_warp = opt["warp_weight"] > 0
    base = make_base(cfg, encoder)
    state = {"theta": torch.zeros_like(points)}

    def scale_fn(index: int, long_side: int, previous: torch.Tensor | None) -> Problem:
        content_s = resize(content_f, long_side).to(device)
        style_s = resize(style_f, long_side).to(device)
        alpha = opt["content_weight"] * (size / long_side if opt["scale_content_weight"] else 1.0)
        start = None if previous is None else previous.to(device)
        problem = scale_problem(base, content_s, style_s, start, state["theta"], points, targets, w, alpha, opt, cfg)
        groups, objective, image_fn, project, theta = problem

        def result() -> torch.Tensor:
            state["theta"] = theta.detach()
            with torch.no_grad():
                return image_fn().clamp(0, 1).detach().cpu()

        return Problem(
            groups,
            objective,
            image=lambda: image_fn().clamp(0, 1),
            optimizer=opt["optimizer"],
            lr=opt["lr"],
            project=project,
            result=result,
            label=f"dst/{cfg.base} {long_side}px",
        )

    stylized = engine.run(scale_schedule(cfg), scale_fn, state)
    theta = state["theta"]
    with torch.no_grad():
        # the final warp is evaluated at every pixel (exact spline) and sampled bicubically
        flow = tps_flow(points, theta, (h, w), cfg.border_points, grid=None)
        if use_warp:
            output = warp_image(stylized.to(device), flow, mode="bicubic")
            content_warped = warp_image(content_f.to(device), flow, mode="bicubic")
        else:  # the base method alone
            output, content_warped = stylized, content_f
    return {
        "output": output.cpu(),
        "stylized": stylized,
        "content_warped": content_warped.cpu(),
        "theta": theta.cpu(),
        "points": points.cpu(),
        "targets": targets.cpu(),
        "flow": flow.cpu(),
        "content": content_f,
        "style": style_f,
        "style_points": style_scaled,
    }


def _naive_baseline(result: dict, cfg) -> torch.Tensor:
    """Warp the content so its keypoints land exactly on the targets, then stylise it with the base method alone."""
    points, targets = result["points"], result["targets"]
    content_f = result["content"]
    with torch.no_grad():
        flow = tps_flow(points, targets - points, tuple(content_f.shape[-2:]), cfg.border_points, grid=None)
        warped_content = warp_image(content_f, flow, mode="bicubic")
    plain = load(
        DST,
        {
            **OmegaConf.to_container(cfg, resolve=True),
            "warp_weight": 0.0,
            "naive_baseline": False,
            "out_dir": None,
            "progress": cfg.progress,
        },
    )
    return transfer(warped_content, result["style"], targets, result["style_points"], plain)["output"]


def stylize(content, style, content_keypoints=None, style_keypoints=None, **options) -> torch.Tensor:
    """Python API: ``stylize(content, style, content_keypoints, style_keypoints, base="gram", size=256, ...)``.

    ``content``/``style``: image paths or ``(1, 3, H, W)`` tensors in [0, 1]; keypoints: DST-format files, ``(N, 2)``
    (x, y) tensors in each image's pixels, or None (NBB). Returns the warped stylised image ``W(X, θ)``.
    """
    files = isinstance(content_keypoints, (str, Path))
    cfg = load(
        DST,
        {
            **options,
            **({"content_keypoints": str(content_keypoints), "style_keypoints": str(style_keypoints)} if files else {}),
        },
    )
    content, style = as_image(content, "content image"), as_image(style, "style image")
    if content_keypoints is None or files:
        content_keypoints, style_keypoints, _ = get_keypoints(content, style, cfg)
    return transfer(content, style, torch.as_tensor(content_keypoints), torch.as_tensor(style_keypoints), cfg)["output"]


def solve(cfg, engine: Engine) -> dict:
    """The method's entry for :func:`semstyle.api.run`: keypoints (files, NBB or faces), then :func:`transfer`."""
    content = load_image(cfg.content, what="content image")
    style = load_image(cfg.style, what="style image")
    check_method_sizes(cfg, content, [style], [f"content image {cfg.content}", f"style image {cfg.style}"])
    content_pts, style_pts, source = get_keypoints(content, style, cfg)
    if source != "files" and engine.run_dir is not None:  # keep what NBB / the landmarks found (original pixels)
        write_correspondences(
            engine.run_dir.path / "correspondences",
            content_pts,
            style_pts,
            meta={"source": source, "content": str(cfg.content), "style": str(cfg.style)},
        )
    return {**transfer(content, style, content_pts, style_pts, cfg, engine), "source": source}


def save(result: dict, cfg, run_dir: RunDir) -> None:
    """The unwarped result, the warped content, keypoint and flow pictures, ``flow.flo``, ``dst.json``."""
    points, targets, theta, source = result["points"], result["targets"], result["theta"], result["source"]
    run_dir.save_image("stylized_unwarped.png", result["stylized"])
    run_dir.save_image("content_warped.png", result["content_warped"])
    run_dir.save_image("content_keypoints.png", draw_points(result["content"], points, targets))
    run_dir.save_image("style_keypoints.png", draw_points(result["style"], result["style_points"]))
    run_dir.save_image("output_keypoints.png", draw_points(result["output"], points + theta, targets))
    run_dir.save_image("flow.png", flow_picture(result["output"], result["flow"], points, points + theta))
    save_flow(run_dir.path / "flow.flo", result["flow"])
    for name, pts in (("src", points), ("dst", points + theta), ("target", targets)):
        write_keypoints(run_dir.path / f"keypoints_{name}.txt", pts)  # DST save_points: final-size px, row, col
    if cfg.naive_baseline and cfg.warp_weight > 0:
        run_dir.save_image("naive_baseline.png", _naive_baseline(result, cfg))
    fold = min_jacobian(result["flow"])
    if fold < 0:
        warnings.warn(
            f"dst: the warp folds the image over itself (smallest Jacobian determinant {fold:.2f}): the "
            "keypoint pairs disagree; raise warp_tv_weight or give cleaner keypoints (see flow.png)",
            stacklevel=2,
        )
    start = float(alignment_error(points, torch.zeros_like(theta), targets))
    end = float(alignment_error(points, theta, targets))
    summary = {
        "keypoints": source,
        "pairs": len(points),
        "base": cfg.base,
        **settings(cfg),
        "alignment_error_px": {"start": round(start, 3), "end": round(end, 3)},
        "max_displacement_px": round(float(theta.norm(dim=1).max()), 3) if len(theta) else 0.0,
        "min_jacobian": round(fold, 3),
    }
    (run_dir.path / "dst.json").write_text(json.dumps(summary, indent=1))
