"""The main job (`make demo`, configs/default.yaml) timed end to end, with the stopping rule and without it, in the
units of issue 17: seconds divided by one bare fp32 VGG-19 forward+backward (to relu5_1) at 512x384 measured in the
same process.

    python benchmarks/bench_demo.py [--precisions fp32 bf16] [--set key=value ...]

Prints one Markdown row per (precision, stop rule): wall seconds, units, steps run per scale, and the final
objective (the last step's total loss at 512 px).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bare_unit, machine, timed_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def demo(precision: str, rule: str, extra: list[str]) -> tuple[float, list[int], float]:
    config = ROOT / "configs/default.yaml"
    seconds, rows = timed_run(config, [f"precision={precision}", f"stop.rule={rule}", *extra])
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
