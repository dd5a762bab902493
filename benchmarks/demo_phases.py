"""Where the main job's wall time goes (`make demo`, configs/default.yaml), phase by phase, in one fresh process.

    python benchmarks/demo_phases.py [--config FILE|none] [KEY=VALUE ...]

``--config none`` starts from a method's own defaults (``method=dst base=gram size=256 keypoints=nbb`` is
``bench_units.py``'s DST job).

Stamps the engine's events (run, scale and step starts and ends) with the time since the process started, so the
table shows the imports, each scale's set-up, its first step (which pays what is done once per process, such as
the optimiser's first construction), its other steps, and what follows the last step (output image, loss plot,
``run.json``). Run it in a process of its own: the imports are one of the phases.
"""

from __future__ import annotations

import time

START = time.perf_counter()

# isort: split
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs/default.yaml"), help="config file, or none")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = p.parse_args(argv)
    config, overrides = (None if args.config == "none" else args.config), args.overrides
    import semstyle.api as api

    imported = time.perf_counter() - START
    stamps: list[tuple[str, int, int, float]] = []  # (kind, scale, step, seconds since START)

    def stamp(event) -> None:
        stamps.append((event.kind, event.scale, event.step, time.perf_counter() - START))

    with tempfile.TemporaryDirectory() as tmp:
        api.run(config, [*overrides, "progress=false", f"out_dir={tmp}/run"], callbacks=[stamp])
    finished = time.perf_counter() - START

    from common import machine

    print(f"# {machine()}; config {args.config} {' '.join(overrides)}")
    print("| phase | seconds |")
    print("|---|---|")
    print(f"| imports (`import semstyle.api`) | {imported:.2f} |")
    first = next(t for kind, *_, t in stamps if kind == "run_start")
    print(f"| run folder, config, engine, the method's set-up | {first - imported:.2f} |")
    previous = first
    for scale in sorted({s for kind, s, _, _ in stamps if kind == "scale_start"}):
        start = next(t for kind, s, _, t in stamps if kind == "scale_start" and s == scale)
        steps = [t for kind, s, _, t in stamps if kind == "step" and s == scale]
        print(f"| scale {scale}: set-up (images, targets) | {start - previous:.2f} |")
        if steps:
            print(f"| scale {scale}: first step | {steps[0] - start:.2f} |")
        if len(steps) > 1:
            rest = steps[-1] - steps[0]
            print(
                f"| scale {scale}: the other {len(steps) - 1} steps ({rest / (len(steps) - 1):.3f} s each) | {rest:.2f} |"
            )
        previous = steps[-1] if steps else start
    print(f"| after the last step (output image, loss plot, run.json) | {finished - previous:.2f} |")
    print(f"| total | {finished:.2f} |")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
