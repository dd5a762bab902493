"""Step time of the Gatys extensions relative to a bare VGG-19 forward+backward (to relu5_1) at the same size.

    python benchmarks/bench_gatys_ext.py [--size 512] [--precisions fp32 bf16] [--repeats 5]

A "step" is one L-BFGS iteration of the objective :func:`semstyle.methods.gatys.build_objective` builds from a
config, exactly as ``semstyle run`` uses it. Variants: one style (plain Gatys), two styles of different sizes
(multi-style blend), two styles + the Laplacian loss (p = 4 and 16), and luminance-only colour preservation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import semstyle  # noqa: F401  (before torch: it sets GOMP_SPINCOUNT for NNPACK's threads)

# isort: split
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bare_vgg_step, lbfgs_step, machine, median_time, peak_rss_mib, runnable_precisions  # noqa: E402

from semstyle.api import load_config  # noqa: E402
from semstyle.conf.gatys import style_plan
from semstyle.core.color import luminance  # noqa: E402
from semstyle.core.encoder import vgg19_encoder  # noqa: E402
from semstyle.core.image import load_image, resize  # noqa: E402
from semstyle.methods.gatys import build_objective, set_targets  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STYLES = ["assets/styles/starry_night.jpg", "assets/styles/shipwreck.jpg"]

VARIANTS = {
    "one style (plain Gatys)": {"style": STYLES[:1]},
    "two styles": {"style": STYLES, "style_weights": [0.5, 0.5]},
    "two styles + Laplacian": {"style": STYLES, "laplacian": {"weight": 1e3, "pool_sizes": [4, 16]}},
    "luminance only": {"style": STYLES[:1], "color": {"preserve": "luminance"}},
}


def ext_step(encoder, content, styles, options):
    cfg = load_config({"method": "gatys", **options})
    objective = build_objective(cfg, style_plan(cfg, len(styles)), encoder)
    grey = cfg.color.preserve == "luminance"
    view = (lambda x: x.expand(-1, 3, -1, -1)) if grey else (lambda x: x)
    if grey:
        content, styles = luminance(content), [luminance(s) for s in styles]
    set_targets(objective, view(content), [view(s) for s in styles])
    image = content.clone().contiguous().requires_grad_(True)
    return lbfgs_step(objective, image, view)


def term_costs(content, repeats: int) -> None:
    """Forward+backward time of the extension terms alone, on features of the shapes VGG gives at this size."""
    from semstyle.conf.gatys import GATYS_STYLE_LAYERS
    from semstyle.core.encoder import layer_channels, layer_stride
    from semstyle.losses.laplacian import LaplacianLoss
    from semstyle.methods.gatys import BlendedStyleLoss

    h, w = content.shape[-2:]
    feats = {
        layer: torch.rand(1, layer_channels(layer), h // layer_stride(layer), w // layer_stride(layer))
        .contiguous(memory_format=torch.channels_last)
        .requires_grad_(True)
        for layer in GATYS_STYLE_LAYERS
    }
    image = content.detach().cpu().clone().requires_grad_(True)
    lap = LaplacianLoss([4, 16])
    lap.set_target({"image": torch.rand_like(image)})

    def timed(loss_fn):
        def step():
            for t in [image, *feats.values()]:
                t.grad = None
            loss_fn().backward()

        return median_time(step, repeats)

    rows = [("Laplacian loss (p = 4, 16)", timed(lambda: lap({"image": image})))]
    for n in (1, 2):
        blend = BlendedStyleLoss([(1.0 / n, GATYS_STYLE_LAYERS, None)] * n)
        for term in blend.styles:
            term.set_target({k: torch.rand_like(v) for k, v in feats.items()})
        rows.append((f"Gram style loss, {n} style(s), fp32", timed(lambda: blend(feats))))
    print("\n| term alone (fwd+bwd on CPU features) | time (s) |\n|---|---|")
    for name, t in rows:
        print(f"| {name} | {t:.4f} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-terms", action="store_true", help="skip the table of the terms' own cost")
    args = p.parse_args(argv)
    # .contiguous(): load_image returns a channels-last-strided tensor, which L-BFGS's .view() rejects
    content_full = load_image(ROOT / "assets/content/tubingen.jpg").contiguous()
    styles_full = [load_image(ROOT / s).contiguous() for s in STYLES]
    print(f"# {machine()}")
    precisions = runnable_precisions(args.precisions, args.device)
    print(f"# content {args.size} px long side; styles {STYLES} at the same long side (different shapes)")
    print("| precision | variant | bare VGG fwd+bwd (s) | step (s) | ratio to bare | ratio to one style |")
    print("|---|---|---|---|---|---|")
    for precision in precisions:
        encoder = vgg19_encoder("avg", precision, args.device)
        content = resize(content_full, args.size).contiguous().to(encoder.device)
        styles = [resize(s, args.size).to(encoder.device) for s in styles_full]
        bare = median_time(bare_vgg_step(encoder, content), args.repeats)
        base = None
        for name, options in VARIANTS.items():
            used = styles[: len(options["style"])]
            t = median_time(ext_step(encoder, content, used, options), args.repeats)
            base = base or t
            print(f"| {precision} | {name} | {bare:.3f} | {t:.3f} | {t / bare:.2f} | {t / base:.2f} |", flush=True)
    if not args.no_terms:
        term_costs(resize(content_full, args.size).contiguous(), args.repeats)
    print(f"# peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
