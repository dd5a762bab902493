"""Deformable Style Transfer (Kim, Kolkin, Salavon & Shakhnarovich, ECCV 2020).

The stylised image ``X`` and the displacements ``θ`` of content keypoints ``P`` are optimised together; the output
is the warped image ``W(X, θ)`` (:mod:`semstyle.warp`, thin-plate spline with a fixed border):

    L = α·L_content(X, C) + L_style(X, S) + L_style(W(X, θ), S) + β·L_warp(P, P', θ) + γ·R_TV(f_θ)

``L_warp = mean_i ‖(p_i + θ_i) − p'_i‖₂`` (px at the final size), where the targets ``P'`` are the style keypoints
brought into the content frame by a least-squares similarity (Umeyama), and ``R_TV`` is the size-normalised total
variation of the warp's flow field (:func:`semstyle.losses.tv_loss`, squared differences of the per-pixel flow,
which do not change with the scale). The base losses are STROTSS's (``base: strotss``, as the paper) or Gatys's
Gram losses (``base: gram``). ``warp_weight = 0`` runs the base method alone, as DST's ``styletransfer.py`` does.

Keypoints come from DST-format files (``row, col`` per line, original pixels), from Neural Best-Buddies run inline
with DST's cleaning, or from face landmarks (``keypoints: faces``, the ``faces`` extra).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from ..config import check_choice, check_number, load_config, scale_schedule
from ..correspondence import read_correspondences, similarity_align, write_correspondences, write_keypoints
from ..encoder import vgg19_encoder
from ..errors import SemstyleError, check
from ..image import as_image, load_image, resize
from ..losses import ContentLoss, GramLoss
from ..optim import OPTIMIZERS, optimize
from ..runs import RunDir
from ..schedule import coarse_to_fine
from ..warp import draw_points, flow_picture, flow_tv, save_flow, tps_flow, warp_image

BASES = ("strotss", "gram")
KEYPOINT_SOURCES = ("auto", "files", "nbb", "faces")

DEFAULTS = {
    "content": "assets/content/astronaut.jpg",
    "style": "assets/styles/monalisa.jpg",
    "base": "strotss",  # strotss (the paper) | gram (Gatys et al. 2016 losses)
    # DST job_example.sh: im_size 256 and 3 scales (styletransfer.py: 64, 128, 256), max_iter 150 per scale
    "size": 256,
    "scales": [64, 128],
    "steps": 150,
    "keypoints": "auto",  # auto (files if given, else nbb) | files | nbb | faces
    "content_keypoints": None,  # DST-format keypoint files (row, col per line, original pixels)
    "style_keypoints": None,
    "nbb_size": 256,  # NBB working size (DST job_example.sh: --imageSize 256 --fast)
    "max_points": 80,  # DST cleanpoints.py via job_example.sh: max_num_points 80, b 10 (px at nbb_size)
    "min_point_distance": 10,
    # None = the base's default (BASE_DEFAULTS below)
    "content_weight": None,  # α
    "style_weight": None,  # weight of each style term (1 in DST's formula)
    "warp_weight": None,  # β
    "reg_weight": None,  # γ
    "optimizer": None,
    "lr": None,
    "momentum": None,  # SGD only
    "warp_lr": None,  # learning rate of θ (px at the final size)
    "warp_sgd": None,  # with optimizer adam: θ still takes DST's momentum-SGD steps (lr warp_lr, momentum 0.9)
    "warp_optimizer": None,  # adam: θ on its own Adam, steps of ~warp_lr px whatever the pull's scale | sgd: as DST
    "scale_content_weight": None,  # α × size / scale long side at coarser scales (DST: 32, 16, 8)
    "border_points": 80,  # fixed points per image side (DST utils_keypoints.py: border_num_pts 80)
    "warp_grid": 64,  # side of the lattice the spline is evaluated on during the optimisation (semstyle.warp)
    "target_margin": 5,  # targets are clamped this many px (at 256) inside the image (DST styletransfer.py)
    "naive_baseline": False,  # also stylise the keypoint-warped content with the base method alone
    "pooling": None,  # VGG pooling; None = the base's
    "pyramid_levels": 5,  # strotss base: Laplacian pyramid levels (STROTSS/DST utils_pyr: pyr_levs 5)
    "samples": 2048,  # strotss base: output locations per step (DST styletransfer.py: n = 2048)
    "style_samples": 5000,  # strotss base: style locations per scale (DST: 5 draws of 1000)
}

# Per-base defaults for the keys left at None above.
BASE_DEFAULTS = {
    # DST README / job_example.sh: "We like using 8, 0.5, and 50" (alpha, beta, gamma); optim sgd, lr 0.3;
    # styletransfer.py: SGD momentum 0.9, content weight × 2^(scales-1-scale), i.e. 32/16/8 at 64/128/256 px,
    # the same lr for θ (warp_lr_fac 1). DST's images are in [-1, 1] (utils_misc.pil_to_tensor), ours in [0, 1]:
    # the gradient doubles and a step moves half as far, so its lr 0.3 on the pyramid is 0.3 / 4 here; θ is in
    # pixels in both, so it keeps 0.3.
    "strotss": {
        "content_weight": 8.0, "style_weight": 1.0, "warp_weight": 0.5, "reg_weight": 50.0,
        "optimizer": "sgd", "lr": 0.075, "momentum": 0.9, "scale_content_weight": True, "pooling": "max",
        "warp_lr": 0.3, "warp_sgd": False, "warp_optimizer": "adam",
    },
    # No public reference (docs/dst.md has the experiments). The image: Gatys's content/style ratio (1e-3 / 1e-6,
    # semstyle.methods.gatys) with Adam, which is blind to the loss scale. The scale itself sets how hard the warped
    # style term pulls θ: 5e-10 makes that pull as weak relative to the keypoint term as STROTSS's is in DST
    # (measured per point on the DST example: 0.0006 vs β·L_warp's 0.016), so θ keeps all of DST's warp settings:
    # β 0.5, γ 50 and momentum-SGD steps of 0.3 (at Gatys's 1e-6 the Gram term pulls ~20x harder and folds the warp).
    # style_weight 5e-11, not 5e-10 (Gatys's 1e3 ratio): on portraits the Gram term turned eyes, nose and mouth into a
    # dark blotchy mask (issue 16; astronaut / Mona Lisa and CNNMRF portrait at 128 px: blotches at 1e3, fewer at
    # 3e3, none at 1e4 content : style), and the warped Gram term then pulls θ 10x less.
    "gram": {
        "content_weight": 5.0e-7, "style_weight": 5.0e-11, "warp_weight": 0.5, "reg_weight": 50.0,
        "optimizer": "adam", "lr": 0.02, "momentum": 0.0, "scale_content_weight": False, "pooling": "avg",
        "warp_lr": 0.3, "warp_sgd": True, "warp_optimizer": "adam",
    },
}

# Adam's step is lr·m̂/(√v̂ + eps); with eps far above any gradient of θ it becomes (lr/eps)·m̂, a gradient step with
# momentum. m̂ (Adam's moving average, β1 = 0.9) is 1/10 of SGD's momentum sum at steady state, hence lr = 10·eps·lr_sgd.
SGD_EPS = 1.0e4

# DST's STROTSS units (see _StrotssBase): Caffe VGG activations / 58 = torchvision's; the palette term's scale.
DST_FEATURE_SCALE = 1.0 / 58.0
DST_COLOR_SCALE = 6.8
DST_SIZE = 256  # β is for L_warp in px at DST's im_size 256 (job_example.sh)

GRAM_CONTENT_LAYERS = ("conv4_2",)  # Gatys et al. 2016
GRAM_STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


def resolved(cfg) -> dict:
    """The config's optimisation settings with the base's defaults filled in for the keys left at None."""
    out = dict(BASE_DEFAULTS[cfg.base])
    for key in out:
        if cfg.get(key) is not None:
            out[key] = cfg[key]
    if out["optimizer"] == "lbfgs" and cfg.warp_lr is None:  # one step size for every parameter
        out["warp_lr"] = None
    return out


def validate(cfg) -> None:
    check_choice(cfg, "base", BASES)
    check_choice(cfg, "keypoints", KEYPOINT_SOURCES)
    for key in ("content_weight", "style_weight", "warp_weight", "reg_weight", "momentum"):
        if cfg[key] is not None:
            check_number(cfg, key, lo=0)
    for key in ("lr", "warp_lr"):
        if cfg[key] is not None:
            check_number(cfg, key, lo=0, lo_open=True)
    if cfg.optimizer is not None:
        check_choice(cfg, "optimizer", OPTIMIZERS)
    if cfg.warp_optimizer is not None:
        check_choice(cfg, "warp_optimizer", ("adam", "sgd"))
    if cfg.pooling is not None:
        check_choice(cfg, "pooling", ("max", "avg"))
    check_number(cfg, "border_points", lo=0, hi=1000, integer=True)
    check_number(cfg, "warp_grid", lo=2, integer=True)
    check_number(cfg, "target_margin", lo=0)
    check_number(cfg, "nbb_size", lo=32, hi=2048, integer=True)
    check_number(cfg, "max_points", lo=3, integer=True)
    check_number(cfg, "min_point_distance", lo=0)
    check_number(cfg, "pyramid_levels", lo=0, hi=10, integer=True)
    check_number(cfg, "samples", lo=2, integer=True)
    check_number(cfg, "style_samples", lo=1, integer=True)
    has_a, has_b = cfg.content_keypoints is not None, cfg.style_keypoints is not None
    check(has_a == has_b, "content_keypoints and style_keypoints: give both keypoint files or neither")
    check(cfg.keypoints != "files" or has_a, "keypoints=files needs content_keypoints and style_keypoints")
    check(resolved(cfg)["optimizer"] != "lbfgs" or cfg.warp_lr is None,
          "warp_lr: L-BFGS has one step size for all parameters; set optimizer to adam or sgd, or warp_lr to null")


# -- keypoints ---------------------------------------------------------------------------------------------------

def check_keypoints(content_pts: torch.Tensor, style_pts: torch.Tensor, where: str) -> None:
    """Keypoint pairs usable by DST: equal counts, at least 3, finite, no repeated content point."""
    if len(content_pts) != len(style_pts):
        raise SemstyleError(f"{where}: {len(content_pts)} content but {len(style_pts)} style keypoints; they must pair up")
    if len(content_pts) < 3:
        raise SemstyleError(f"{where}: {len(content_pts)} keypoint pairs; DST needs at least 3")
    if not (torch.isfinite(content_pts).all() and torch.isfinite(style_pts).all()):
        raise SemstyleError(f"{where}: keypoints contain NaN or infinite values")
    same = (torch.cdist(content_pts, content_pts) < 0.5).float().triu(1).nonzero()
    if len(same):
        i, j = same[0].tolist()
        raise SemstyleError(f"{where}: content keypoints {i + 1} and {j + 1} are the same pixel "
                            f"({content_pts[i, 0]:g}, {content_pts[i, 1]:g}); a warp cannot move one point two ways")


def _nbb_pairs(content: torch.Tensor, style: torch.Tensor, cfg) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inline Neural Best-Buddies (``--fast``, as DST's job_example.sh) + DST's cleaning -> points in original
    pixels and activations."""
    from ..correspondence.clean import clean_points
    from ..correspondence.nbb import nbb_keypoints

    found = nbb_keypoints(content, style, fast=True, size=cfg.nbb_size, precision=cfg.precision, device=cfg.device,
                          progress=cfg.progress)
    return clean_points(found.points_a, found.points_b, found.activation, tuple(content.shape[-2:]),
                        tuple(style.shape[-2:]), max_num_points=cfg.max_points, b=cfg.min_point_distance,
                        im_size=cfg.nbb_size)


def get_keypoints(content: torch.Tensor, style: torch.Tensor, cfg) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``(content points, style points, source)``: ``(N, 2)`` (x, y) in each image's original pixels."""
    source = cfg.keypoints
    if source == "auto":
        source = "files" if cfg.content_keypoints is not None else "nbb"
    if source == "files":
        pa, pb, _ = read_correspondences(cfg.content_keypoints, cfg.style_keypoints,
                                         size_a=tuple(content.shape[-2:]), size_b=tuple(style.shape[-2:]))
        check_keypoints(pa, pb, f"keypoint files {cfg.content_keypoints}, {cfg.style_keypoints}")
        return pa, pb, "files"
    if source == "faces":
        from ..landmarks import available, face_keypoints

        if not available():
            warnings.warn("keypoints=faces: MediaPipe is not installed (the faces extra, docs/dst.md); using NBB",
                          stacklevel=2)
        else:
            found = face_keypoints(content, style, cfg.max_points, cfg.min_point_distance, cfg.nbb_size)
            if found is not None:
                check_keypoints(*found, "face landmarks")
                return found[0], found[1], "faces"
            warnings.warn("keypoints=faces: no face found in the content or style image; using NBB", stacklevel=2)
    pa, pb, _ = _nbb_pairs(content, style, cfg)
    check_keypoints(pa, pb, "NBB keypoints")
    return pa, pb, "nbb"


# -- the base losses ---------------------------------------------------------------------------------------------

class _GramBase:
    """Gatys content (conv4_2) and Gram style losses on pixels; ``X`` and ``W(X)`` share one batched VGG pass."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.content = ContentLoss(GRAM_CONTENT_LAYERS)
        self.style = GramLoss(GRAM_STYLE_LAYERS)
        self.layers = [l for l in _ordered(GRAM_CONTENT_LAYERS + GRAM_STYLE_LAYERS)]

    def set_targets(self, content: torch.Tensor, style: torch.Tensor) -> None:
        with torch.no_grad():
            self.content.set_target(self.encoder(content, self.content.layers))
            self.style.set_target(self.encoder(style, self.style.layers))

    def upsample(self, previous: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        return resize(previous, tuple(content.shape[-2:]))

    def parameterise(self, image: torch.Tensor):
        x = image.clone().requires_grad_(True)
        return [x], lambda: x, lambda: x.clamp_(0, 1)

    def losses(self, x: torch.Tensor, warped: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Unweighted ``(content(X), style(X), style(W(X)) or None)``."""
        batch = x if warped is None else torch.cat([x, warped])
        feats = self.encoder(batch, self.layers)
        fx = {layer: f[:1] for layer, f in feats.items()}
        style_w = None if warped is None else self.style({layer: f[1:] for layer, f in feats.items()})
        return self.content(fx), self.style(fx), style_w


class _StrotssBase:
    """STROTSS's self-similarity content loss and REMD + moment + colour style loss (semstyle.losses.strotss), on
    a Laplacian-pyramid image, as DST's ``styletransfer.py``; ``X`` and ``W(X)`` are read at the same points."""

    def __init__(self, encoder, levels: int, samples: int, style_samples: int, seed: int):
        from ..losses.strotss import StrotssLoss

        # DST runs STROTSS's losses on torchvision's VGG-16 with ImageNet-normalised input (vggfeatures.py), i.e.
        # Caffe activations / 58, not the paper-era 1/255 of semstyle.hypercolumn: its moment term is ~4x (means)
        # and ~20x (covariances) the paper-era one, and its weights (α 8) were set for that balance.
        self.loss = StrotssLoss(encoder, samples=samples, style_samples=style_samples, seed=seed,
                                feature_scale=DST_FEATURE_SCALE)
        self.levels = levels
        self.content_weight = 1.0  # set per scale: the colour term is divided by max(α, 1) (DST styletransfer.py)

    def set_targets(self, content: torch.Tensor, style: torch.Tensor) -> None:
        self.loss.set_targets(content, style)

    def upsample(self, previous: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """The previous scale's result plus the content's detail band it could not hold: DST keeps one pyramid of
        the content for all scales and uses only its coarser levels at first, so a new scale starts with the
        content's finest band (styletransfer.py: ``syn_lap_pyr(s_pyr[begin_ind:])``)."""
        from ..pyramid import high_pass

        return resize(previous, tuple(content.shape[-2:]), mode="bilinear") + high_pass(content)

    def parameterise(self, image: torch.Tensor):
        from ..pyramid import LaplacianPyramid

        pyramid = LaplacianPyramid(image, self.levels).to(image.device)
        return list(pyramid.parameters()), pyramid, None

    def _style(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        # DST's palette term is on ImageNet-normalised RGB (÷ std ~0.226) in an orthonormal YUV (RGB distances);
        # semstyle's on [0, 1] RGB in BT.601 YUV, whose distances are ~0.65 of RGB's: 1 / (0.226 · 0.65) ≈ 6.8.
        return terms["remd"] + terms["moment"] + DST_COLOR_SCALE * terms["color"] / max(self.content_weight, 1.0)

    def losses(self, x, warped):
        points = self.loss.draw_points()
        hx = self.loss.hypercolumns(x, points)
        content = self.loss.content_term(hx, points)
        style_w = None if warped is None else self._style(self.loss.style_terms(self.loss.hypercolumns(warped, points)))
        return content, self._style(self.loss.style_terms(hx)), style_w


def _ordered(layers) -> list[str]:
    from ..encoder import LAYER_NAMES

    return [l for l in LAYER_NAMES if l in set(layers)]


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


def scale_problem(base, content_s: torch.Tensor, style_s: torch.Tensor, previous: torch.Tensor | None,
                  theta0: torch.Tensor, points: torch.Tensor, targets: torch.Tensor, final_width: int, alpha: float,
                  opt: dict, cfg):
    """Set up one scale: targets, the image parameters started from ``previous`` (or the content), θ and the
    objective. Returns ``(param groups, objective() -> (total, terms), image_fn, project, theta)``."""
    hs, ws = content_s.shape[-2:]
    factor = ws / final_width  # final-size px -> this scale's px
    use_warp = opt["warp_weight"] > 0
    base.content_weight = alpha
    base.set_targets(content_s, style_s)
    start = content_s if previous is None else base.upsample(previous, content_s)
    params, image_fn, project = base.parameterise(start)
    theta = theta0.clone().requires_grad_(use_warp)
    groups = [{"params": params}]
    warp_opt = None
    if use_warp and opt["warp_optimizer"] == "adam" and opt["optimizer"] != "lbfgs":
        # θ on its own Adam, stepped after the image's step. DST's momentum SGD moves a keypoint by lr·β/N per step
        # (N keypoints): ~0.05 px at lr 0.3 on its 32-point example, so 3 x 150 steps end far short of where
        # β·L_warp and γ·R_TV balance (and twice as far with 71 points). Adam steps ~warp_lr px whatever N and
        # the weights (docs/dst.md, *Against the reference*).
        warp_opt = torch.optim.Adam([theta], lr=opt["warp_lr"])
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
        if use_warp:
            flow = tps_flow(points * factor, theta * factor, (hs, ws), cfg.border_points, cfg.warp_grid)
            warped = warp_image(x, flow)
        else:
            warped = None
        l_content, l_style, l_style_w = base.losses(x, warped)
        terms = {"content": alpha * l_content, "style": opt["style_weight"] * l_style}
        if use_warp:
            terms["style_warped"] = opt["style_weight"] * l_style_w
            # px at DST's 256: R_TV is unit-free (a squared Jacobian), so L_warp in px of cfg.size would shift the
            # balance with the image size (at 64 px the warp would stop 4x earlier)
            terms["warp"] = opt["warp_weight"] * alignment_error(points, theta, targets) * (DST_SIZE / cfg.size)
            terms["warp_tv"] = opt["reg_weight"] * flow_tv(flow)  # DST's four-direction TV, for which γ = 50 was set
        total = sum(terms.values())
        return total, {k: float(v.detach()) for k, v in terms.items()}

    return groups, objective, image_fn, project, theta


def make_base(cfg, encoder):
    """The base losses and image parameterisation of ``cfg.base``."""
    if cfg.base == "gram":
        return _GramBase(encoder)
    return _StrotssBase(encoder, cfg.pyramid_levels, cfg.samples, cfg.style_samples, cfg.seed)


def transfer(content: torch.Tensor, style: torch.Tensor, content_pts: torch.Tensor, style_pts: torch.Tensor, cfg,
             run: RunDir | None = None) -> dict[str, torch.Tensor]:
    """DST with a resolved config. Images ``(1, 3, H, W)`` in [0, 1]; keypoints ``(N, 2)`` (x, y) in each image's
    own pixels. Returns ``{"output", "stylized", "content_warped", "theta", "points", "targets", "flow"}`` at the
    final size (points in its pixels)."""
    check_keypoints(content_pts, style_pts, "keypoints")
    opt = resolved(cfg)
    encoder = vgg19_encoder(opt["pooling"], cfg.precision, cfg.device)
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
    log = run.log if run is not None else None
    torch.manual_seed(cfg.seed)

    def scale_fn(index: int, long_side: int, previous: torch.Tensor | None) -> torch.Tensor:
        content_s = resize(content_f, long_side).to(device)
        style_s = resize(style_f, long_side).to(device)
        alpha = opt["content_weight"] * (size / long_side if opt["scale_content_weight"] else 1.0)
        start = None if previous is None else previous.to(device)
        problem = scale_problem(base, content_s, style_s, start, state["theta"], points, targets, w, alpha, opt, cfg)
        groups, objective, image_fn, project, theta = problem

        def save_frame(step: int) -> None:
            if run is not None and cfg.save_every > 0 and (step + 1) % cfg.save_every == 0:
                with torch.no_grad():
                    run.save_image(f"frames/s{index}_{step + 1:05d}.png", image_fn().clamp(0, 1))

        optimize(groups, objective, cfg.steps, opt["optimizer"], opt["lr"], project=project, log=log, scale=index,
                 on_step=save_frame, desc=f"dst/{cfg.base} {long_side}px", progress=cfg.progress)
        state["theta"] = theta.detach()
        with torch.no_grad():
            return image_fn().clamp(0, 1).detach().cpu()

    stylized = coarse_to_fine(scale_schedule(cfg), scale_fn, run, state)
    theta = state["theta"]
    with torch.no_grad():
        # the final warp is evaluated at every pixel (exact spline) and sampled bicubically
        flow = tps_flow(points, theta, (h, w), cfg.border_points, grid=None)
        if use_warp:
            output = warp_image(stylized.to(device), flow, mode="bicubic")
            content_warped = warp_image(content_f.to(device), flow, mode="bicubic")
        else:  # the base method alone
            output, content_warped = stylized, content_f
    return {"output": output.cpu(), "stylized": stylized, "content_warped": content_warped.cpu(),
            "theta": theta.cpu(), "points": points.cpu(), "targets": targets.cpu(), "flow": flow.cpu(),
            "content": content_f, "style": style_f, "style_points": style_scaled}


def _naive_baseline(result: dict, cfg) -> torch.Tensor:
    """Warp the content so its keypoints land exactly on the targets, then stylise it with the base method alone."""
    points, targets = result["points"], result["targets"]
    content_f = result["content"]
    with torch.no_grad():
        flow = tps_flow(points, targets - points, tuple(content_f.shape[-2:]), cfg.border_points, grid=None)
        warped_content = warp_image(content_f, flow, mode="bicubic")
    plain = load_config({**_container(cfg), "warp_weight": 0.0, "naive_baseline": False, "out_dir": None})
    return transfer(warped_content, result["style"], targets, result["style_points"], plain)["output"]


def _container(cfg) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)


def stylize(content, style, content_keypoints=None, style_keypoints=None, **options) -> torch.Tensor:
    """Python API: ``stylize(content, style, content_keypoints, style_keypoints, base="gram", size=256, ...)``.

    ``content``/``style``: image paths or ``(1, 3, H, W)`` tensors in [0, 1]; keypoints: DST-format files, ``(N, 2)``
    (x, y) tensors in each image's pixels, or None (NBB). Returns the warped stylised image ``W(X, θ)``.
    """
    files = isinstance(content_keypoints, (str, Path))
    cfg = load_config({"method": "dst", **options, **({"content_keypoints": str(content_keypoints),
                                                      "style_keypoints": str(style_keypoints)} if files else {})})
    content, style = as_image(content, "content image"), as_image(style, "style image")
    if content_keypoints is None or files:
        content_keypoints, style_keypoints, _ = get_keypoints(content, style, cfg)
    return transfer(content, style, torch.as_tensor(content_keypoints), torch.as_tensor(style_keypoints), cfg)["output"]


def run(cfg, run_dir: RunDir) -> torch.Tensor:
    content = load_image(cfg.content, what="content image")
    style = load_image(cfg.style, what="style image")
    content_pts, style_pts, source = get_keypoints(content, style, cfg)
    if source != "files":  # keep what NBB / the landmarks found, in original pixels and DST's format
        write_correspondences(run_dir.path / "correspondences", content_pts, style_pts,
                              meta={"source": source, "content": str(cfg.content), "style": str(cfg.style)})
    result = transfer(content, style, content_pts, style_pts, cfg, run_dir)
    points, targets, theta = result["points"], result["targets"], result["theta"]
    run_dir.save_image("output.png", result["output"])
    run_dir.save_image("stylized_unwarped.png", result["stylized"])
    run_dir.save_image("content_warped.png", result["content_warped"])
    run_dir.save_image("content_keypoints.png", draw_points(result["content"], points, targets))
    run_dir.save_image("style_keypoints.png", draw_points(result["style"], result["style_points"]))
    run_dir.save_image("output_keypoints.png", draw_points(result["output"], points + theta, targets))
    run_dir.save_image("flow.png", flow_picture(result["output"], result["flow"], points, points + theta))
    save_flow(run_dir.path / "flow.flo", result["flow"])
    for name, pts in (("src", points), ("dst", points + theta), ("target", targets)):
        write_keypoints(run_dir.path / f"keypoints_{name}.txt", pts)  # DST save_points: final-size px, row, col
    if cfg.naive_baseline and resolved(cfg)["warp_weight"] > 0:
        run_dir.save_image("naive_baseline.png", _naive_baseline(result, cfg))
    fold = min_jacobian(result["flow"])
    if fold < 0:
        warnings.warn(f"dst: the warp folds the image over itself (smallest Jacobian determinant {fold:.2f}): the "
                      "keypoint pairs disagree; raise reg_weight or give cleaner keypoints (see flow.png)", stacklevel=2)
    start = float(alignment_error(points, torch.zeros_like(theta), targets))
    end = float(alignment_error(points, theta, targets))
    summary = {"keypoints": source, "pairs": len(points), "base": cfg.base, **resolved(cfg),
               "alignment_error_px": {"start": round(start, 3), "end": round(end, 3)},
               "max_displacement_px": round(float(theta.norm(dim=1).max()), 3) if len(theta) else 0.0,
               "min_jacobian": round(fold, 3)}
    (run_dir.path / "dst.json").write_text(json.dumps(summary, indent=1))
    return result["output"]
