"""Deformable Style Transfer side by side: the reference code (sunniesuhyoung/DST) and semstyle, same pair, same CPU.

    python benchmarks/dst_reference.py --reference /path/to/DST [--pair DIR] [--size 256] [--steps 150]
        [--out OUT] [--only reference semstyle-strotss semstyle-gram] [k=v ...]

``--reference`` is a checkout of the public DST repository (read-only: it is imported from there, never copied
into this repository). Its ``VGG16_Extractor`` uses torchvision's ImageNet VGG-16, which cannot be downloaded here;
it is replaced by a **stand-in VGG-16 built from the bundled Caffe VGG-19** (:func:`standin_vgg16`). The pair is a
folder with ``content.jpg``, ``style.jpg``, ``correspondence_A.txt`` and ``correspondence_B.txt`` (DST format,
original pixels), default the DST example ``../shared/data/portraits/dst_bunny``.

Measured for each run (all at the final size, DST's frame):

* alignment error before / after: mean ``‖P + θ − P'‖`` (px), DST's ``L_warp``, with the same Umeyama targets;
* the largest displacement ``max ‖θ_i‖`` (px);
* the colour-histogram distance to the style: half the L1 distance between the joint RGB histograms
  (8 bins per channel) of the output and of the style image (0 = same colours, 1 = no colour in common);
* the content correlation: Pearson correlation of the luminance of the output and of the content warped by the
  same θ (so that the geometric change itself does not count as lost content).

Writes ``OUT/results.json``, ``OUT/table.md`` and ``OUT/side_by_side.png`` (content, style, then one column per
run); ``k=v`` overrides go to both semstyle runs (e.g. ``warp_lr=0.5``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path

import numpy as np

import semstyle  # noqa: F401  (before torch: it sets GOMP_SPINCOUNT for NNPACK's threads)

# isort: split
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

from semstyle.core.encoder import CAFFE_MEAN_BGR, load_vgg19_weights  # noqa: E402
from semstyle.core.image import load_image, resize, save_image, to_pil  # noqa: E402
from semstyle.geometry import tps_flow, warp_image  # noqa: E402
from semstyle.geometry.keypoints import read_correspondences, similarity_align  # noqa: E402


def dst_config(options: dict):
    """A resolved DST config from ``options``."""
    from semstyle.conf import load_config

    return load_config({"method": "dst", **options})


ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PAIR = ROOT.parent / "shared" / "data" / "portraits" / "dst_bunny"
TORCHVISION_MEAN, TORCHVISION_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CAFFE_TO_TORCHVISION = 58.0  # Caffe VGG activations are ~58x torchvision's (semstyle.encoder)
VGG16_CONVS = (
    "conv1_1",
    "conv1_2",
    "conv2_1",
    "conv2_2",
    "conv3_1",
    "conv3_2",
    "conv3_3",
    "conv4_1",
    "conv4_2",
    "conv4_3",
    "conv5_1",
    "conv5_2",
    "conv5_3",
)


# -- the stand-in VGG-16 -----------------------------------------------------------------------------------------


def standin_vgg16() -> torch.nn.Sequential:
    """torchvision's ``vgg16().features`` layout (31 modules: conv, ReLU, max-pool) with Caffe VGG-19 weights.

    VGG-19's convolutions without conv3_4, conv4_4 and conv5_4. The input is torchvision's (RGB, ImageNet mean and
    std normalised); the Caffe preprocessing (RGB -> BGR, × 255, minus the Caffe mean) is folded into the first
    convolution, then its weight and every bias are divided by 58, which (ReLU and max-pooling being positively
    homogeneous) divides every activation by 58: torchvision's scale. One difference remains at the image border:
    the zero padding of conv1_1 pads with torchvision's zero (the ImageNet mean colour), not Caffe's.
    """
    weights = load_vgg19_weights()
    mean, std = torch.tensor(TORCHVISION_MEAN), torch.tensor(TORCHVISION_STD)
    caffe_mean_rgb = torch.tensor(CAFFE_MEAN_BGR).flip(0)
    layers: list[torch.nn.Module] = []
    for name in VGG16_CONVS:
        w, b = (t.clone() for t in weights[name])
        if name == "conv1_1":
            w = w.flip(1)  # BGR input channels -> RGB
            # caffe_rgb = 255·(std·x + mean) − caffe_mean = (255·std)·x + (255·mean − caffe_mean)
            shift = 255.0 * mean - caffe_mean_rgb
            b = b + (w.sum(dim=(2, 3)) * shift).sum(1)
            w = w * (255.0 * std).view(1, 3, 1, 1)
            w = w / CAFFE_TO_TORCHVISION
        b = b / CAFFE_TO_TORCHVISION
        conv = torch.nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
        conv.weight.data.copy_(w)
        conv.bias.data.copy_(b)
        layers += [conv, torch.nn.ReLU(inplace=True)]
        if name.endswith(("1_2", "2_2", "3_3", "4_3", "5_3")):
            layers.append(torch.nn.MaxPool2d(2, 2))
    features = torch.nn.Sequential(*layers)
    assert len(features) == 31
    return features.requires_grad_(False).eval()


# -- the reference -----------------------------------------------------------------------------------------------


def import_reference(path: Path, samples: int = 2048, style_samples: int = 5000):
    """Import DST's ``styletransfer``/``vggfeatures``/``utils_misc`` from ``path`` with the shims today's libraries
    need: ``torch.solve`` (removed in torch 2) -> ``torch.linalg.solve``, ``np.float`` (removed in numpy 1.24), and
    an empty ``torchvision`` (the stand-in replaces its VGG-16). ``samples`` < 2048 and ``style_samples`` < 5000
    thin out the output locations per step and the style locations per scale (DST: n = 2048, 5 × 1000), where the
    CPU cannot afford DST's counts: DST's ``sample_indices`` then returns a random subset."""
    torch.solve = lambda b, a: (torch.linalg.solve(a, b), None)  # torch 2 keeps a stub that raises
    if not hasattr(np, "float"):
        np.float = float
    if "torchvision" not in sys.modules:
        tv = types.ModuleType("torchvision")
        tv.models = types.ModuleType("torchvision.models")
        sys.modules["torchvision"], sys.modules["torchvision.models"] = tv, tv.models
    sys.path.insert(0, str(path))
    import styletransfer
    import utils_misc
    import vggfeatures

    class StandIn(vggfeatures.VGG16_Extractor):
        def __init__(self):
            torch.nn.Module.__init__(self)
            self.vgg_layers = standin_vgg16()
            self.capture_layers = [1, 3, 6, 8, 11, 13, 15, 22, 29]

        def forward_samples_hypercolumn(self, x, samps=100):  # styletransfer.py draws 5 x 1000 per scale
            return super().forward_samples_hypercolumn(x, samps=round(samps * style_samples / 5000))

    if not hasattr(styletransfer, "_full_sample_indices"):
        styletransfer._full_sample_indices = styletransfer.sample_indices

    def sample_indices(feat_content, feat_style):
        xx, xy = styletransfer._full_sample_indices(feat_content, feat_style)
        keep = np.random.permutation(len(xx))[:samples] if samples < 2048 else slice(None)
        return xx[keep], xy[keep]

    styletransfer.sample_indices = sample_indices

    return styletransfer, utils_misc, StandIn


def run_reference(
    path: Path, pair: Path, size: int, steps: int, seed: int, samples: int = 2048, style_samples: int = 5000
) -> dict:
    """DST's ``main.py`` with its job_example.sh settings (α 8, β 0.5, γ 50, SGD lr 0.3), stand-in VGG-16."""
    styletransfer, um, StandIn = import_reference(path, samples, style_samples)
    torch.manual_seed(seed)
    np.random.seed(seed)
    content_pil, style_pil = um.pil_loader(str(pair / "content.jpg")), um.pil_loader(str(pair / "style.jpg"))
    content_pts = np.loadtxt(pair / "correspondence_A.txt", delimiter=",") * (size / max(content_pil.size))
    style_pts = np.loadtxt(pair / "correspondence_B.txt", delimiter=",") * (size / max(style_pil.size))
    content = um.pil_to_tensor(um.pil_resize_long_edge_to(content_pil, size))
    style = um.pil_to_tensor(um.pil_resize_long_edge_to(style_pil, size))
    seen = {}
    original = styletransfer.gen_dst_pts_keypoints

    def spy(src, thetas, no_flow, border):  # the last call, after the optimisation, sees the final θ
        seen["theta"] = thetas.detach().clone()
        return original(src, thetas, no_flow, border)

    styletransfer.gen_dst_pts_keypoints = spy
    p = torch.from_numpy(content_pts).float()
    q = torch.from_numpy(style_pts).float()
    _, targets, _, _ = styletransfer.init_keypoint_params(content, "", p.clone(), q.clone(), "cpu")
    targets[:, 0] = targets[:, 0].clamp(5, content.size(2) - 5)
    targets[:, 1] = targets[:, 1].clamp(5, content.size(3) - 5)
    t = time.perf_counter()
    out = styletransfer.DST(
        content.clone(),
        content,
        style,
        StandIn(),
        "",
        "",
        p,
        q,
        "",
        "/tmp",
        "ref",
        im_size=size,
        max_iter=steps,
        checkpoint_iter=max(steps // 3, 1),
        content_weight=8.0,
        warp_weight=0.5,
        reg_weight=50.0,
        optim="sgd",
        lr=0.3,
        verbose=True,
        save_intermediate=False,
        save_extra=False,
        device="cpu",
    )
    wall = time.perf_counter() - t
    styletransfer.gen_dst_pts_keypoints = original
    theta = seen["theta"]

    def xy(rc):  # DST's (row, col) -> semstyle's (x, y)
        return rc.flip(1)

    return {
        "output": ((out.detach() + 1) / 2).clamp(0, 1),
        "points": xy(p),
        "theta": xy(theta),
        "targets": xy(targets),
        "content": (content + 1) / 2,
        "style": (style + 1) / 2,
        "seconds": wall,
    }


def reference_warp_only(path: Path, pair: Path, size: int, steps: int, seed: int) -> list[float]:
    """DST's θ dynamics without the style terms (their pull on θ is < 4 % of β·L_warp's, measured): DST's keypoint
    targets, TPS, ``TV`` and SGD (lr 0.3, momentum 0.9, one optimiser for all scales) at 64, 128 and 256 px.
    Returns the alignment error (px at ``size``) at the start and after each scale."""
    styletransfer, um, _ = import_reference(path)
    import loss as ref_loss
    import warp as ref_warp

    torch.manual_seed(seed)
    content_pil, style_pil = um.pil_loader(str(pair / "content.jpg")), um.pil_loader(str(pair / "style.jpg"))
    p = torch.from_numpy(np.loadtxt(pair / "correspondence_A.txt", delimiter=",") * (size / max(content_pil.size)))
    q = torch.from_numpy(np.loadtxt(pair / "correspondence_B.txt", delimiter=",") * (size / max(style_pil.size)))
    content = um.pil_to_tensor(um.pil_resize_long_edge_to(content_pil, size))
    src, targets, border, no_flow = styletransfer.init_keypoint_params(content, "", p.float(), q.float(), "cpu")
    targets[:, 0] = targets[:, 0].clamp(5, content.size(2) - 5)
    targets[:, 1] = targets[:, 1].clamp(5, content.size(3) - 5)
    theta = (torch.rand_like(src) * 1e-4).requires_grad_(True)
    opt = torch.optim.SGD([theta], lr=0.3, momentum=0.9)
    errors = [float((targets - src).norm(dim=1).mean())]
    for down in (4, 2, 1):
        blank = torch.zeros(1, 3, content.size(2) // down, content.size(3) // down)
        for _ in range(steps):
            opt.zero_grad()
            src_aug, dst_aug, _ = styletransfer.gen_dst_pts_keypoints(src, theta, no_flow, border)
            ell_warp = torch.norm(targets - dst_aug[: len(src)], dim=1).mean()
            src_aug = src_aug / src_aug.max(0, keepdim=True)[0]
            dst_aug = (dst_aug / dst_aug.max(0, keepdim=True)[0]).clamp(0, 1)
            _, _, field = ref_warp.apply_warp(blank, [src_aug], [dst_aug], "cpu", im2=blank)
            (0.5 * ell_warp + 50 * ref_loss.TV(field)).backward()
            opt.step()
        errors.append(float((targets - src - theta.detach()).norm(dim=1).mean()))
    return errors


def load_pair(pair: Path):
    """The pair's content and style images and its published keypoints (original pixels, (x, y))."""
    content, style = load_image(pair / "content.jpg"), load_image(pair / "style.jpg")
    pa, pb, _ = read_correspondences(
        pair / "correspondence_A.txt",
        pair / "correspondence_B.txt",
        size_a=tuple(content.shape[-2:]),
        size_b=tuple(style.shape[-2:]),
    )
    return content, style, pa, pb


def semstyle_warp_only(
    pair: Path, size: int, steps: int, tv: str = "dst", optimizer: str = "adam", px_at_256: bool = True
) -> list[float]:
    """semstyle's θ dynamics without the style terms, as :func:`semstyle.methods.dst.scale_problem` sets them up:
    ``tv`` dst (:func:`semstyle.losses.flow_tv.flow_tv`) or two (:func:`semstyle.losses.tv_loss`, before this change),
    ``optimizer`` adam (lr 0.3 px, a new one per scale) or sgd (lr 0.3, momentum 0.9, a new one per scale)."""
    from semstyle.losses import tv_loss
    from semstyle.losses.flow_tv import flow_tv
    from semstyle.methods import dst

    content, style, pa, pb = load_pair(pair)
    points = pa * (size / max(content.shape[-2:]))
    h, w = resize(content, size).shape[-2:]
    margin = 5 * size / 256
    targets = similarity_align(pb * (size / max(style.shape[-2:])), points)
    targets = torch.stack([targets[:, 0].clamp(margin, w - 1 - margin), targets[:, 1].clamp(margin, h - 1 - margin)], 1)
    theta = torch.zeros_like(points, requires_grad=True)
    regulariser = flow_tv if tv == "dst" else tv_loss
    errors = [float(dst.alignment_error(points, theta.detach(), targets))]
    for down in (4, 2, 1):
        hs, ws = h // down, w // down
        opt = (
            torch.optim.Adam([theta], lr=0.3) if optimizer == "adam" else torch.optim.SGD([theta], lr=0.3, momentum=0.9)
        )
        for _ in range(steps):
            opt.zero_grad()
            flow = tps_flow(points / down, theta / down, (hs, ws))
            unit = 256 / size if px_at_256 else 1.0
            (0.5 * dst.alignment_error(points, theta, targets) * unit + 50 * regulariser(flow)).backward()
            opt.step()
        errors.append(float(dst.alignment_error(points, theta.detach(), targets)))
    return errors


def warp_only(args) -> None:
    """``--warp-only``: the alignment error after each scale of DST's full schedule, θ alone."""
    rows = {}
    if args.reference is not None:
        rows["reference (SGD 0.3, DST's TV)"] = reference_warp_only(
            args.reference, args.pair, args.size, args.steps, args.seed
        )
    rows["semstyle before (SGD 0.3 per scale, two-direction TV)"] = semstyle_warp_only(
        args.pair, args.size, args.steps, "two", "sgd"
    )
    rows["semstyle SGD 0.3 per scale, DST's TV"] = semstyle_warp_only(args.pair, args.size, args.steps, "dst", "sgd")
    rows["semstyle now (Adam 0.3, DST's TV)"] = semstyle_warp_only(args.pair, args.size, args.steps, "dst", "adam")
    lines = [
        f"{machine()}; θ alone, {args.steps} steps per scale, 64/128/{args.size} px",
        "",
        "| θ dynamics | start | after 64 px | after 128 px | after 256 px | reduction |",
        "|---|---|---|---|---|---|",
    ]
    for name, e in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in e) + f" | {100 * (1 - e[-1] / e[0]):.0f} % |")
    text = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "warp_only.md").write_text(text + "\n")
    print(text)


# -- semstyle ----------------------------------------------------------------------------------------------------


def run_semstyle(pair: Path, base: str, size: int, steps: int, seed: int, overrides: list[str]) -> dict:
    from omegaconf import OmegaConf

    from semstyle.methods import dst

    content, style, pa, pb = load_pair(pair)
    extra = OmegaConf.to_container(OmegaConf.from_dotlist(overrides)) if overrides else {}
    cfg = dst_config({"base": base, "size": size, "steps": steps, "seed": seed, "progress": False, **extra})
    t = time.perf_counter()
    result = dst.transfer(content, style, pa, pb, cfg)
    result["seconds"] = time.perf_counter() - t
    return result


# -- measures ----------------------------------------------------------------------------------------------------


def colour_histogram_distance(image: torch.Tensor, style: torch.Tensor, bins: int = 8) -> float:
    """Half the L1 distance of the joint RGB histograms (``bins`` per channel) of two ``(1, 3, H, W)`` images in
    [0, 1]: 0 = the same colour distribution, 1 = disjoint."""

    def hist(x):
        q = (x[0].clamp(0, 1) * (bins - 1e-6)).long().reshape(3, -1)
        h = torch.bincount(q[0] * bins * bins + q[1] * bins + q[2], minlength=bins**3).double()
        return h / h.sum()

    return float(0.5 * (hist(image) - hist(style)).abs().sum())


def luminance(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).flatten()


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = luminance(a).double(), luminance(b).double()
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm()))


def measure(r: dict) -> dict:
    points, theta, targets = r["points"], r["theta"], r["targets"]
    h, w = r["output"].shape[-2:]
    with torch.no_grad():
        flow = tps_flow(points, theta, (h, w), grid=None)
        content_warped = warp_image(r["content"][..., :h, :w], flow, mode="bicubic")
    style = r["style"]
    return {
        "alignment_start_px": float((points - targets).norm(dim=1).mean()),
        "alignment_end_px": float((points + theta - targets).norm(dim=1).mean()),
        "max_displacement_px": float(theta.norm(dim=1).max()),
        "hist_distance_to_style": colour_histogram_distance(r["output"], style),
        "content_correlation": correlation(r["output"], content_warped),
        "seconds": r["seconds"],
    }


def side_by_side(columns: list[tuple[str, torch.Tensor]], path: Path, height: int = 256) -> None:
    from PIL import Image, ImageDraw

    tiles = [
        (name, to_pil(resize(img, (height, round(img.shape[-1] * height / img.shape[-2]))))) for name, img in columns
    ]
    width = sum(t.width for _, t in tiles) + 4 * (len(tiles) - 1)
    sheet = Image.new("RGB", (width, height + 16), "white")
    draw, x = ImageDraw.Draw(sheet), 0
    for name, tile in tiles:
        sheet.paste(tile, (x, 16))
        draw.text((x + 2, 2), name, fill="black")
        x += tile.width + 4
    sheet.save(path)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", type=Path, help="checkout of sunniesuhyoung/DST")
    ap.add_argument("--pair", type=Path, default=DEFAULT_PAIR)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=2048, help="output locations per step, both codes (DST: 2048)")
    ap.add_argument("--style-samples", type=int, default=5000, help="style locations per scale (DST: 5000)")
    ap.add_argument("--out", type=Path, default=Path("dst_reference_out"))
    ap.add_argument("--only", nargs="*", default=["reference", "semstyle-strotss", "semstyle-gram"])
    ap.add_argument("--warp-only", action="store_true", help="θ dynamics alone (no style terms), both codes")
    ap.add_argument("overrides", nargs="*", help="k=v config overrides for the semstyle runs")
    args = ap.parse_args(argv)
    if args.warp_only:
        return warp_only(args)
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    images = {}
    for name in args.only:
        if name == "reference":
            if args.reference is None:
                ap.error("--reference DIR is needed to run the reference")
            r = run_reference(
                args.reference, args.pair, args.size, args.steps, args.seed, args.samples, args.style_samples
            )
        else:
            sampling = (
                [f"samples={args.samples}", f"style_samples={args.style_samples}"] if name.endswith("strotss") else []
            )
            r = run_semstyle(
                args.pair, name.split("-", 1)[1], args.size, args.steps, args.seed, sampling + args.overrides
            )
        results[name] = {
            **measure(r),
            "steps": args.steps,
            "size": args.size,
            "samples": args.samples,
            "style_samples": args.style_samples,
            "overrides": [] if name == "reference" else args.overrides,
        }
        images[name] = r["output"]
        save_image(r["output"], args.out / f"{name}.png")
        print(name, json.dumps(results[name]), flush=True)
    results["machine"] = machine()
    results_path.write_text(json.dumps(results, indent=1))
    rows = [
        "| run | alignment error (px) | reduction | largest displacement (px) | histogram distance to style "
        "| content correlation | time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in results.items():
        if name == "machine":
            continue
        red = 1 - m["alignment_end_px"] / m["alignment_start_px"]
        rows.append(
            f"| {name} | {m['alignment_start_px']:.2f} → {m['alignment_end_px']:.2f} | {100 * red:.0f} % "
            f"| {m['max_displacement_px']:.1f} | {m['hist_distance_to_style']:.3f} "
            f"| {m['content_correlation']:.3f} | {m['seconds']:.0f} |"
        )
    table = "\n".join(rows)
    (args.out / "table.md").write_text(f"{results['machine']}\n\n{table}\n")
    print(table)
    content = resize(load_image(args.pair / "content.jpg"), args.size)
    style = resize(load_image(args.pair / "style.jpg"), args.size)
    columns = [("content", content), ("style", style)]
    for name in results:
        png = args.out / f"{name}.png"
        if name != "machine" and png.exists():
            columns.append((name, load_image(png)))
    side_by_side(columns, args.out / "side_by_side.png")


if __name__ == "__main__":
    main()
