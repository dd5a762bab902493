"""Feed-forward models: quality against optimisation-based Gatys, inference and video speed.

    python benchmarks/bench_feedforward.py gatys   [--photos P...] [--sizes 256 512] [--steps 50]
    python benchmarks/bench_feedforward.py quality [--models multimodal johnson] [--photos P...] [--sizes 256 512]
                                                   [--run-at N]
    python benchmarks/bench_feedforward.py stages  [--models multimodal multimodal-1024] [--sizes 256 512]
    python benchmarks/bench_feedforward.py speed   [--models ...] [--sizes 512 1024] [--repeats 3] [--device cpu]
    python benchmarks/bench_feedforward.py video   [--models ...] [--size 512] [--frames 10]
    python benchmarks/bench_feedforward.py readme  [--photo P] [--out docs/img/ff-readme.png]
    python benchmarks/bench_feedforward.py crops   [--size 512] [--batch 4] [--device cuda]

Quality: each output is scored with the Gatys objective the models were trained on (α·L_content at conv4_2 +
β·mean_l L_style over conv1_1..conv5_1, avg pooling, α = 1e-3, β = 1e-6; the style image resized to the output's
long side), computed in fp32 by the project's encoder, the same function for every image. ``gatys`` runs
``semstyle.api.run`` (method gatys, L-BFGS from the content image, ``--steps`` steps) on each photo and size and
stores its score in ``--cache`` (it does not depend on the models, so it can run once); ``quality`` scores the
models' outputs and prints the ratio model / Gatys (< 1: the model is better on the objective). ``stages`` scores
every stage of a Multimodal model as the answer at each size (that stage run with its output at the size), where
``quality`` scores the stage ``stylize`` picks (``FeedForward.output_stage``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import semstyle  # noqa: F401  (before torch: it sets GOMP_SPINCOUNT for NNPACK's threads)

# isort: split
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, runnable_precisions  # noqa: E402

from semstyle import api  # noqa: E402
from semstyle.conf.feedforward import FeedForwardConfig  # noqa: E402
from semstyle.core.encoder import vgg19_encoder  # noqa: E402
from semstyle.core.image import load_image, resize  # noqa: E402
from semstyle.feedforward.stylize import Stylizer  # noqa: E402
from semstyle.losses.content import content_loss  # noqa: E402
from semstyle.losses.gram import gram_loss, gram_matrix  # noqa: E402
from semstyle.viz.layout import captioned_row  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STYLE = ROOT / "semstyle/assets/styles/starry_night.jpg"
# not in the training set (docs/feedforward.md): the bundled astronaut and the shared Kodak kodim15
PHOTOS = [str(ROOT / "semstyle/assets/content/astronaut.jpg"), str(ROOT.parent / "shared/data/content/kodim15.png")]
CACHE = ROOT / "docs/benchmarks/feedforward_gatys.json"


def score(image: torch.Tensor, content: torch.Tensor, style: torch.Tensor, encoder, cfg=FeedForwardConfig()):
    """The training objective of one image ``(1, 3, H, W)``: ``(total, content term, style term)``."""
    layers = list(dict.fromkeys([*cfg.content_layers, *cfg.style_layers]))
    with torch.no_grad():
        f, c = encoder(image, layers), encoder(resize(content, tuple(image.shape[-2:])), cfg.content_layers)
        s = encoder(resize(style, max(image.shape[-2:])), cfg.style_layers)
        lc = sum(content_loss(f[k], c[k]) for k in cfg.content_layers) / len(cfg.content_layers)
        ls = sum(gram_loss(gram_matrix(f[k]), gram_matrix(s[k])) for k in cfg.style_layers) / len(cfg.style_layers)
    a, b = cfg.content_weight * float(lc), cfg.style_weight * float(ls)
    return a + b, a, b


def run_gatys(args) -> None:
    cache = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    encoder = vgg19_encoder("avg", "fp32", "cpu")
    style = load_image(STYLE)
    for photo in args.photos:
        for size in args.sizes:
            content = load_image(photo, size)
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                out = api.run(
                    None,
                    [f"content={photo}", f"style={STYLE}", f"size={size}", f"steps={args.steps}", "progress=false"],
                    out_dir=f"{tmp}/run",
                )
                seconds = time.perf_counter() - t
                image = load_image(out / "output.png")
            total, a, b = score(image, content, style, encoder)
            start = score(content, content, style, encoder)[0]
            cache[f"{Path(photo).name}@{size}"] = {
                "gatys": total,
                "content": a,
                "style": b,
                "start": start,
                "steps": args.steps,
                "seconds": round(seconds, 1),
            }
            print(
                f"{Path(photo).name} {size}px: gatys {args.steps} steps {total:.4g} (content image {start:.4g}), "
                f"{seconds:.0f} s"
            )
    cache["_machine"] = machine()
    CACHE.write_text(json.dumps(cache, indent=1) + "\n")


def run_quality(args) -> None:
    cache = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    encoder = vgg19_encoder("avg", "fp32", "cpu")
    style = load_image(STYLE)
    print("| model | photo | size | model score | Gatys 50 L-BFGS | content image | ratio model/Gatys |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        model = Stylizer(name, "cpu", "fp32")
        for photo in args.photos:
            for size in args.sizes:
                content = load_image(photo, size)
                if args.run_at:  # the model's output at another size, resized (bilinear) to the scored one
                    out = model(load_image(photo, args.run_at))
                    out = resize(out, tuple(content.shape[-2:]), mode="bilinear").clamp(0, 1)
                else:
                    out = model(content)
                total = score(out, content, style, encoder)[0]
                ref = cache.get(f"{Path(photo).name}@{size}")
                gatys = f"{ref['gatys']:.4g}" if ref else "not run"
                ratio = f"{total / ref['gatys']:.2f}" if ref else "-"
                start = f"{ref['start']:.4g}" if ref else "-"
                print(f"| {name} | {Path(photo).name} | {size} | {total:.4g} | {gatys} | {start} | {ratio} |")


def run_stages(args) -> None:
    cache = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    encoder = vgg19_encoder("avg", "fp32", "cpu")
    style = load_image(STYLE)
    for name in args.models:
        model = Stylizer(name, "cpu", "fp32")
        scales = model.net.scales
        print(
            f"| {name} ({'/'.join(map(str, scales))} px) | photo | size | "
            + " | ".join(f"stage {k + 1} at {s} px" for k, s in enumerate(scales))
            + " | picked |"
        )
        print("|---" * (len(scales) + 4) + "|")
        for photo in args.photos:
            for size in args.sizes:
                content = load_image(photo, size)
                ref = cache.get(f"{Path(photo).name}@{size}")
                cells = []
                for k in range(len(scales)):
                    with torch.no_grad():
                        out = model.net(content, size, stage=k)[-1].float().clamp(0, 1)
                    total = score(out, content, style, encoder)[0]
                    cells.append(f"{total:.4g}" + (f" ({total / ref['gatys']:.2f})" if ref else ""))
                picked = model.net.output_stage(size) + 1
                print(f"| | {Path(photo).name} | {size} | " + " | ".join(cells) + f" | stage {picked} |")


def run_speed(args) -> None:
    """fp32 and bf16 interleaved in one process, ``--repeats`` rounds after a warm-up: the minimum is the closest
    to an unloaded machine's time (the machine these ran on was shared), the median is shown beside it. Each time
    includes the copy to ``--device`` and back (the stylised image is returned on the CPU). Where ``--device``
    has no bf16 units the bf16 column says so instead (semstyle would run fp32 there)."""
    print(f"machine: {machine()}")
    precisions = runnable_precisions(("fp32", "bf16"), args.device)
    print("| model | output | fp32 s (min / median) | bf16 s (min / median) |")
    print("|---|---|---|---|")
    photo = load_image(PHOTOS[0])
    for name in args.models:
        models = {p: Stylizer(name, args.device, p) for p in precisions}
        for size in args.sizes:
            image = resize(photo, size)
            times = {p: [] for p in models}
            for p, m in models.items():
                m(image)
            for _ in range(args.repeats):
                for p, m in models.items():
                    t = time.perf_counter()
                    m(image)
                    times[p].append(time.perf_counter() - t)
            cells = [f"{min(times[p]):.2f} / {statistics.median(times[p]):.2f}" for p in models]
            cells += ["- (no bf16 units)"] * (2 - len(cells))
            print(f"| {Path(name).stem} | {size}×{size} | {cells[0]} | {cells[1]} |")


def run_video(args) -> None:
    import cv2
    import numpy as np

    from semstyle.feedforward.stylize import stylize_video

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.mp4"
        photo = (resize(load_image(PHOTOS[0]), args.size)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        h, w = photo.shape[:2]
        writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (w, h))
        for i in range(args.frames):
            writer.write(np.ascontiguousarray(np.roll(photo, 4 * i, axis=1)[..., ::-1]))
        writer.release()
        for name in args.models:
            model = Stylizer(name, "cpu", "auto")
            t = time.perf_counter()
            stylize_video(model, src, Path(tmp) / f"{name}.mp4", None, progress=False)
            fps = args.frames / (time.perf_counter() - t)
            print(f"{name}: {fps:.2f} frames/s at {w}x{h} ({model.precision}; decode, stylise, encode)")


def run_crops(args) -> None:
    """Seconds to cut one training batch (``--batch`` random crops of ``--size`` px from the default set), with the
    images kept and resampled on the CPU and on ``--device``: median of ``--repeats`` batches after a warm-up."""
    from semstyle.feedforward.data import CropDataset, default_images

    print(f"machine: {machine()}")
    for device in dict.fromkeys(["cpu", args.device]):
        data = CropDataset(default_images(), args.size, device=device)
        data.batch(0, args.batch)
        times = []
        for step in range(1, args.repeats + 1):
            t = time.perf_counter()
            data.batch(step, args.batch).sum().item()  # .item(): waits for the device
            times.append(time.perf_counter() - t)
        print(f"crops on {device}: {statistics.median(times) * 1e3:.1f} ms for {args.batch} x {args.size} px")


def run_readme(args) -> None:
    """The README's picture: a photo not in the training set, the bundled models' outputs, the style."""
    photo = load_image(args.photo, 384)
    outs = [Stylizer(name, "cpu", "auto")(photo) for name in ("multimodal", "johnson")]
    style = load_image(STYLE, (photo.shape[-2], round(photo.shape[-2] * 1.6)))
    row = captioned_row([photo, *outs, style], ["input (not trained on)", "multimodal", "johnson", "style"])
    row.save(args.out)
    print(args.out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("gatys", "quality", "stages", "speed", "video", "readme", "crops"))
    p.add_argument("--photos", nargs="+", default=PHOTOS)
    p.add_argument("--photo", default=PHOTOS[1])
    p.add_argument("--sizes", nargs="+", type=int, default=None)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--batch", type=int, default=4, help="crops: samples in a batch")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--models", nargs="+", default=["multimodal", "johnson"])
    p.add_argument("--run-at", type=int, help="quality: run the models at this long side, then resize to each size")
    p.add_argument("--device", default="cpu", help="speed: where the models run; crops: where to cut them (cpu, cuda)")
    p.add_argument("--out", default=str(ROOT / "docs/img/ff-readme.jpg"))
    args = p.parse_args()
    if args.sizes is None:
        args.sizes = [512, 1024] if args.what == "speed" else [256, 512]
    runs = {"gatys": run_gatys, "quality": run_quality, "stages": run_stages, "speed": run_speed, "video": run_video}
    {**runs, "readme": run_readme, "crops": run_crops}[args.what](args)


if __name__ == "__main__":
    main()
