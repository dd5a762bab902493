"""A time-to-quality race against neural-style-pt (issue 17, item 6): both tools minimise THE SAME function, and
the race reports the wall time each needs to reach neural-style-pt's objective value at its default 1000 L-BFGS
iterations.

    git clone https://github.com/ProGamerGov/neural-style-pt   # measured at commit 7251405 (2022-08-05)
    python benchmarks/race_neural_style.py --neural-style-pt ../neural-style-pt [--size 512] [--precisions fp32 bf16]

The function is neural-style-pt's default objective (``neural_style.py``): on the Caffe VGG-19 (max pooling, BGR
0-255 mean-subtracted input)

    5 · mean((relu4_2(x) − relu4_2(c))²)
    + 100 · Σ_l mean((F_l F_lᵀ/(C_l h_l w_l) − A_l)²)   over relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
    + 1e-3 · (Σ|x_{i+1,j} − x_{i,j}| + Σ|x_{i,j+1} − x_{i,j}|)   on the 0-255 image

semstyle's Gatys objective is configured to it (:func:`semstyle_overrides`): its Gram is ``F Fᵀ/(h w)`` and its
style loss ``Σ(G − A)²/(4C²)``, so the layer weights are ``4/C_l²``; its TV is a mean over each direction's
differences on [0, 1] pixels, so the weight is 255·1e-3 times the mean number of differences (the two directions'
counts differ by (W − H)/(HW) of a part, which the check below shows). Before the race the script evaluates both
tools' functions on one image (neural-style-pt's first iteration from ``-init image``) and prints their relative
difference.

Both tools get the same images, resized once here with Pillow's bilinear filter (what neural-style-pt's
``transforms.Resize`` does to a PIL image), the same VGG-19 weights (semstyle's bundled Caffe weights, written into
neural-style-pt's ``vgg19`` layout), and the same threads. neural-style-pt imports torchvision only for its
image transforms, and torchvision has no importable build for this torch: a stand-in with those five transforms,
written to a temporary folder, takes its place. neural-style-pt runs unchanged otherwise: its defaults (random
init, L-BFGS with 100 corrections, 1000 iterations), ``-print_iter 1`` and a fixed seed.

Each tool runs in its own process; times are seconds since that process was started, read from its output as it
arrives. semstyle runs its own defaults for the rest (content init, a coarse-to-fine schedule, L-BFGS with 10
corrections; ``lbfgs_history=100`` gives it neural-style-pt's 100) and stops once its objective at the final size is
at or below the target. In bf16 its own loss is a bf16 estimate, so every ``--check-every`` steps the fp32 function
is evaluated on the current image, and that evaluation's time is subtracted from semstyle's clock.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import semstyle  # noqa: F401  (before torch: it sets GOMP_SPINCOUNT for NNPACK's threads)

# isort: split
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
CHANNELS = [64, 128, 256, 512, 512]
CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT = 5.0, 100.0, 1e-3  # neural_style.py defaults
# The stand-in for torchvision.transforms: the five transforms neural_style.py's preprocess/deprocess use, with
# torchvision's semantics on PIL images (Resize takes (h, w) and filters bilinearly; ToPILImage truncates x·255).
TORCHVISION_STANDIN = """
import numpy as np, torch
from PIL import Image

class Compose:
    def __init__(self, fs): self.fs = fs
    def __call__(self, x):
        for f in self.fs:
            x = f(x)
        return x

class Resize:
    def __init__(self, size): self.size = size
    def __call__(self, img): return img.resize((self.size[1], self.size[0]), Image.BILINEAR)

class ToTensor:
    def __call__(self, img):
        return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()

class Lambda:
    def __init__(self, f): self.f = f
    def __call__(self, x): return self.f(x)

class Normalize:
    def __init__(self, mean, std): self.mean, self.std = mean, std
    def __call__(self, x):
        return (x - torch.tensor(self.mean).view(-1, 1, 1)) / torch.tensor(self.std).view(-1, 1, 1)

class ToPILImage:
    def __call__(self, x):
        return Image.fromarray(x.mul(255).byte().permute(1, 2, 0).numpy())
"""


def resized(path: Path, size) -> Image.Image:
    """``path`` resized as neural_style.py's ``preprocess`` does: long side ``size`` (an int) or to ``(h, w)``."""
    image = Image.open(path).convert("RGB")
    if isinstance(size, int):
        size = tuple(int(size / max(image.size) * x) for x in (image.height, image.width))
    return image.resize((size[1], size[0]), Image.BILINEAR)


def write_weights(path: Path) -> None:
    """semstyle's Caffe VGG-19 convolutions as neural-style-pt's ``VGG.features`` state dict."""
    from semstyle.core.encoder import load_vgg19_weights

    state, index = {}, 0
    for block, convs in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4)):
        for i in range(1, convs + 1):
            weight, bias = load_vgg19_weights()[f"conv{block}_{i}"]
            state[f"features.{index}.weight"], state[f"features.{index}.bias"] = weight, bias
            index += 2  # conv, relu
        index += 1  # pool
    torch.save(state, path)


def prepare(work: Path, content: Path, style: Path, size: int) -> dict[str, Path]:
    files = {"content": work / "content.png", "style": work / "style.png", "check": work / "check.png"}
    resized(content, size).save(files["content"])
    resized(style, size).save(files["style"])
    h, w = Image.open(files["content"]).height, Image.open(files["content"]).width
    resized(style, (h, w)).save(files["check"])  # a second image of the content's shape, far from it
    files["weights"] = work / "vgg19-semstyle-caffe.pth"  # "vgg" and "19" in the name pick neural-style-pt's VGG-19
    write_weights(files["weights"])
    (work / "standin" / "torchvision").mkdir(parents=True)
    (work / "standin" / "torchvision" / "__init__.py").write_text("from . import transforms\n")
    (work / "standin" / "torchvision" / "transforms.py").write_text(TORCHVISION_STANDIN)
    return files


def semstyle_overrides(files: dict[str, Path], size: int) -> list[str]:
    """semstyle's Gatys config for neural-style-pt's default objective at long side ``size``."""
    h, w = Image.open(files["content"]).height, Image.open(files["content"]).width
    mean_differences = 3 * ((h - 1) * w + h * (w - 1)) / 2
    layer_weights = ",".join(repr(4.0 / c**2) for c in CHANNELS)
    return [
        "method=gatys",
        f"content={files['content']}",
        f"style={files['style']}",
        f"size={size}",
        "style_scale=1.0",
        "pooling=max",
        "content_layers=[relu4_2]",
        f"style_layers=[{','.join(LAYERS)}]",
        f"style_layer_weights=[{layer_weights}]",
        f"content_weight={CONTENT_WEIGHT}",
        f"style_weight={STYLE_WEIGHT}",
        f"tv_weight={TV_WEIGHT * 255 * mean_differences!r}",
        "tv_power=1.0",
    ]


def fp32_objective(files: dict[str, Path], size: int):
    """semstyle's objective (fp32) for the race, as a function of an RGB [0, 1] image ``(1, 3, H, W)``."""
    from semstyle.api import load_config
    from semstyle.conf.gatys import style_plan
    from semstyle.core.encoder import VGG19Encoder
    from semstyle.core.image import load_image
    from semstyle.methods.gatys import build_objective, set_targets

    cfg = load_config(None, semstyle_overrides(files, size))
    objective = build_objective(cfg, style_plan(cfg, 1), VGG19Encoder("max", "fp32", "cpu"))
    set_targets(objective, load_image(files["content"]), [load_image(files["style"])])

    @torch.no_grad()
    def evaluate(image: torch.Tensor) -> tuple[float, dict[str, float]]:
        total, terms = objective(image.float())
        return float(total), terms

    return evaluate, load_image


def neural_style(repo: Path, work: Path, files: dict[str, Path], size: int, extra: list[str]):
    """Run neural_style.py; yields ``(seconds since start, iteration, {"total": ..., "content": ..., "style": ...})``."""
    env = dict(os.environ, PYTHONPATH=str(work / "standin"))
    args = [sys.executable, "-u", str(repo / "neural_style.py"), "-gpu", "c", "-model_file", str(files["weights"])]
    args += ["-disable_check", "-content_image", str(files["content"]), "-style_image", str(files["style"])]
    args += ["-image_size", str(size), "-print_iter", "1", "-save_iter", "0", "-seed", "0"]
    args += ["-output_image", str(work / "neural_style.png"), *extra]
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    iteration, terms, log = 0, {}, []
    for line in proc.stdout:
        log.append(line)
        if m := re.match(r"Iteration (\d+) /", line):
            iteration, terms = int(m.group(1)), {"content": 0.0, "style": 0.0}
        elif m := re.match(r"\s+(Content|Style) \d+ loss: (\S+)", line):
            terms[m.group(1).lower()] += float(m.group(2))
        elif m := re.match(r"\s+Total loss: (\S+)", line):
            yield time.perf_counter() - start, iteration, {**terms, "total": float(m.group(1))}
    if proc.wait() != 0:
        sys.exit("neural_style.py failed:\n" + "".join(log[-20:]))


def semstyle_race(files: dict[str, Path], size: int, precision: str, target: float, options: list[str]):
    """Run semstyle in a worker process; yields ``(seconds, scale, step, fp32 objective or None)``."""
    args = [sys.executable, "-u", __file__, "--worker", precision, repr(target), str(size)]
    args += [f"{k}={v}" for k, v in files.items()] + ["--", *options]
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = []
    for line in proc.stdout:
        log.append(line)
        if line.startswith("STEP "):
            _, scale, step, value, excluded = line.split()
            seconds = time.perf_counter() - start - float(excluded)
            yield seconds, int(scale), int(step), None if value == "-" else float(value)
    if proc.wait() != 0:
        sys.exit("semstyle worker failed:\n" + "".join(log[-20:]))


def worker(precision: str, target: float, size: int, entries: list[str], options: list[str]) -> None:
    """The semstyle side of the race: prints ``STEP scale step fp32-objective excluded-seconds`` per step."""
    from semstyle.api import run
    from semstyle.engine.events import StopRun

    files = {k: Path(v) for k, v in (e.split("=", 1) for e in entries)}
    evaluate, _ = fp32_objective(files, size) if precision != "fp32" else (None, None)
    excluded, check_every = 0.0, 5

    def on_event(event) -> None:
        nonlocal excluded
        if event.kind != "step":
            return
        final = event.scale == event.scales - 1
        value = None
        if final and precision == "fp32":
            value = event.loss  # the step's loss is the fp32 function at the image it was evaluated on
        elif final and (event.step % check_every == 0 or event.step == event.steps):
            t = time.perf_counter()
            value = evaluate(event.current_image())[0]
            excluded += time.perf_counter() - t
        print(f"STEP {event.scale} {event.step} {'-' if value is None else repr(value)} {excluded!r}", flush=True)
        if value is not None and value <= target:
            raise StopRun("target reached")

    with tempfile.TemporaryDirectory() as tmp:
        overrides = semstyle_overrides(files, size) + [f"precision={precision}", "progress=false", *options]
        run(None, overrides + [f"out_dir={tmp}/run"], callbacks=[on_event])


def plot(curves: dict[str, list[tuple[float, float]]], target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for label, points in curves.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], label=label)
    ax.axhline(target, color="grey", lw=0.8, ls="--", label="neural-style-pt at 1000 iterations")
    ax.set_yscale("log")
    ax.set_ylim(target * 0.8, target * 30)
    ax.set_xlabel("seconds since the process started")
    ax.set_ylabel("objective at the final size")
    ax.set_title("Same objective, same weights, same machine")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--neural-style-pt", type=Path, required=True, help="a checkout of ProGamerGov/neural-style-pt")
    p.add_argument("--content", type=Path, default=ROOT / "semstyle/assets/content/tubingen.jpg")
    p.add_argument("--style", type=Path, default=ROOT / "semstyle/assets/styles/starry_night.jpg")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--iterations", type=int, default=1000, help="neural-style-pt's -num_iterations (its default)")
    p.add_argument("--precisions", nargs="+", default=["fp32"], help="semstyle precisions to race (fp32, bf16)")
    p.add_argument("--csv", type=Path, help="write every curve point here")
    p.add_argument("--plot", type=Path, help="write the curves (objective vs seconds) here")
    p.add_argument("semstyle_options", nargs="*", help="semstyle key=value overrides, e.g. scales=[256] steps=400")
    args = p.parse_args()
    if not (args.neural_style_pt / "neural_style.py").is_file():
        sys.exit(f"--neural-style-pt: {args.neural_style_pt} has no neural_style.py; clone ProGamerGov/neural-style-pt")
    options = args.semstyle_options or ["scales=[256]", "scale_steps=[100]", "steps=1000"]
    print(f"# {machine()}; semstyle options: {' '.join(options)}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = prepare(work, args.content, args.style, args.size)
        evaluate, load_image = fp32_objective(files, args.size)

        # The same function: both tools on one image (neural-style-pt evaluates it at its first iteration).
        _, _, theirs = next(
            neural_style(
                args.neural_style_pt,
                work,
                files,
                args.size,
                ["-init", "image", "-init_image", str(files["check"]), "-num_iterations", "1"],
            )
        )
        ours, terms = evaluate(load_image(files["check"]))
        print(
            f"same function: neural-style-pt {theirs['total']:.6g}, semstyle {ours:.6g}, relative difference "
            f"{abs(ours - theirs['total']) / theirs['total']:.2e} (content {terms['content']:.6g} vs "
            f"{theirs['content']:.6g}, style {terms['style']:.6g} vs {theirs['style']:.6g})",
            flush=True,
        )

        curves = {}
        points = []
        for seconds, iteration, values in neural_style(
            args.neural_style_pt, work, files, args.size, ["-num_iterations", str(args.iterations)]
        ):
            points.append((seconds, values["total"]))
            if iteration % 100 == 0:
                print(f"  neural-style-pt {iteration}: {values['total']:.6g} at {seconds:.1f} s", flush=True)
        target = points[-1][1]
        picture = evaluate(load_image(work / "neural_style.png"))[0]
        curves["neural-style-pt (fp32)"] = points
        print(
            f"target: {target:.6g} after {points[-1][0]:.1f} s; the picture it saves (clamped to 0-255, 8 bits) "
            f"scores {picture:.6g}",
            flush=True,
        )
        write_csv(args.csv, curves)

        for precision in args.precisions:
            curve = []
            for seconds, _, _, value in semstyle_race(files, args.size, precision, target, options):
                if value is not None:
                    curve.append((seconds, value))
            curves[f"semstyle ({precision})"] = curve
            write_csv(args.csv, curves)

        print(f"\nseconds to reach each objective value, and neural-style-pt's time / semstyle's ({machine()})")
        levels = [picture] + [target * f for f in (1.5, 1.2, 1.1, 1.05, 1.02, 1.0)]
        print("| objective | " + " | ".join(curves) + " |")
        print("|---|" + "---|" * len(curves))
        for level in levels:
            reached = [next((s for s, v in curve if v <= level), None) for curve in curves.values()]
            cells = [
                "not reached"
                if t is None
                else f"{t:.0f}" + ("" if i == 0 or reached[0] is None else f" ({reached[0] / t:.1f}x)")
                for i, t in enumerate(reached)
            ]
            name = f"{level:.4g}" + (
                " (its saved picture)" if level == picture else f" ({level / target:.2f} x target)"
            )
            print(f"| {name} | " + " | ".join(cells) + " |")
        if args.plot:
            plot(curves, target, args.plot)


def write_csv(path: Path | None, curves: dict[str, list[tuple[float, float]]]) -> None:
    if path is None:
        return
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["tool", "seconds", "objective"])
        for label, curve in curves.items():
            out.writerows((label, f"{s:.3f}", f"{v:.6g}") for s, v in curve)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        split = sys.argv.index("--")
        precision, target, size = sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
        worker(precision, target, size, sys.argv[5:split], sys.argv[split + 1 :])
    else:
        main()
