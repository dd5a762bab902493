"""Gatys against Deformable Style Transfer (both bases) on a portrait, with DST's naive-warp baseline.

Kim, Kolkin, Salavon & Shakhnarovich 2020, Figs. 1 and 5: on a face, Gatys et al. keep the photo's geometry;
DST also moves the keypoints of the content towards the painting's (here the DST authors' own bunny pair and its
published correspondences), on its STROTSS base (the paper) or the Gatys base. The naive baseline warps the content
by the keypoints first and then stylises it with the base method alone (DST's comparison). ``figure.png``: content,
style, Gatys, DST on each base, the naive baseline; ``metrics.md``: every result's metrics, with the keypoint
alignment error. Needs ../shared/data/portraits (skips with a reason without it).

    python scripts/gatys_vs_dst.py [--size 256] [--steps 100] [--out runs/experiments/gatys_vs_dst]
"""

from __future__ import annotations

import sys
from pathlib import Path

from _common import ROOT, Timer, base_overrides, entry, exit_code, needs_shared, parser, sweep


def main(argv=None) -> int:
    args = parser(__doc__, size=256, steps=100, out="runs/experiments/gatys_vs_dst").parse_args(argv)
    content, style, points_a, points_b = needs_shared(
        *(
            f"portraits/dst_bunny/{name}"
            for name in ("content.jpg", "style.jpg", "correspondence_A.txt", "correspondence_B.txt")
        )
    )
    from semstyle.api import run
    from semstyle.core.image import load_image, save_image
    from semstyle.experiments.metrics import collect, sweep_runs
    from semstyle.viz.layout import captioned_row

    with Timer():
        out = Path(args.out)
        images = [f"content={content}", f"style={style}"]
        dst = [f"content_keypoints={points_a}", f"style_keypoints={points_b}", "keypoints=files", "naive_baseline=true"]
        folder = sweep(
            args,
            out / "dst",
            ROOT / "configs" / "dst" / "gatys.yaml",
            {"base": ["strotss", "gram"]},
            base_overrides(args) + images + dst,
        )
        gatys = out / "gatys"
        if not (gatys / "output.png").is_file():  # one run beside the sweep: re-running skips it like the sweep's
            run(
                ROOT / "configs" / "default.yaml",
                base_overrides(args) + images + [f"out_dir={gatys}", "progress=false"],
            )
        collect([folder, gatys], size=args.eval_size, out=out)
        panels = [load_image(content, args.size), load_image(style, args.size), load_image(gatys / "output.png")]
        captions = ["content", "style", "Gatys"]
        for r in sweep_runs(folder):
            if r["state"] == "done":
                panels.append(load_image(r["folder"] / "output.png"))
                captions.append(f"DST, {r['overrides']['base']} base")
                if (r["folder"] / "naive_baseline.png").is_file():
                    panels.append(load_image(r["folder"] / "naive_baseline.png"))
                    captions.append(f"naive warp, {r['overrides']['base']}")
        save_image(captioned_row(panels, captions), out / "figure.png")
        print(f"figure: {out / 'figure.png'}\ntable: {out / 'metrics.md'}")
    return exit_code()


if __name__ == "__main__":
    sys.exit(entry(main))
