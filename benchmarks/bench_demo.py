"""The main job (`make demo`, configs/default.yaml) timed end to end, with the stopping rule and without it, in the
units of issue 17: seconds divided by one bare fp32 VGG-19 forward+backward (to relu5_1) at 512x384 measured in the
same process.

    python benchmarks/bench_demo.py [--precisions fp32 bf16] [--set key=value ...]

Prints one Markdown row per (precision, stop rule): wall seconds, units, steps run per scale, and the final
objective (the last step's total loss at 512 px).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bare_vgg_step, machine, median_time  # noqa: E402

from semstyle.api import run  # noqa: E402
from semstyle.core.encoder import VGG19Encoder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def bare_unit() -> float:
    """Seconds of one bare fp32 VGG-19 forward+backward to relu5_1 at 512x384 (channels-last, as the runs use)."""
    encoder = VGG19Encoder("avg", "fp32", "cpu")
    return median_time(bare_vgg_step(encoder, torch.rand(1, 3, 384, 512)), repeats=3, warmup=1)


def demo(precision: str, rule: str, extra: list[str]) -> tuple[float, list[int], float]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = run(
            ROOT / "configs/default.yaml",
            [f"precision={precision}", f"stop.rule={rule}", "progress=false", f"out_dir={tmp}/run", *extra],
        )
        seconds = time.perf_counter() - start
        rows = list(csv.DictReader((path / "losses.csv").read_text().splitlines()))
    steps = [sum(1 for r in rows if r["scale"] == s) for s in sorted({r["scale"] for r in rows})]
    return seconds, steps, float(rows[-1]["total"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--precisions", nargs="+", default=["fp32"])
    p.add_argument("--rules", nargs="+", default=["rel_improvement", "none"])
    p.add_argument("--set", nargs="*", default=[], dest="extra", metavar="KEY=VALUE")
    args = p.parse_args()
    unit = bare_unit()
    print(f"# {machine()}; unit = bare fp32 VGG-19 fwd+bwd at 512x384 = {unit:.2f} s")
    print("| precision | stop rule | wall (s) | units | steps per scale | final objective |")
    print("|---|---|---|---|---|---|")
    for precision in args.precisions:
        for rule in args.rules:
            seconds, steps, total = demo(precision, rule, args.extra)
            print(
                f"| {precision} | {rule} | {seconds:.1f} | {seconds / unit:.1f} | {steps} | {total:.5g} |", flush=True
            )


if __name__ == "__main__":
    main()
