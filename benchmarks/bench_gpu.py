"""Issue 17's benchmark suite on a GPU: each job's wall time, its optimisation time and its final objective, once
per precision, in one process (CUDA and cuDNN start-up paid once by a small warm-up run first).

    python benchmarks/bench_gpu.py [--jobs gatys500 demo doodle dst_gram dst_strotss] [--precisions fp32 bf16]
        [--device cuda] [--shared ../shared/data] [--overrides key=value ...]

Jobs (each a ``semstyle.api.run``, as ``semstyle run`` starts it):
- ``gatys500``: ``configs/default.yaml`` at 512 px, one scale, 500 L-BFGS steps (issue 17's GPU goal: <= 15 s on
  an H100);
- ``demo``: ``configs/default.yaml`` as it is (``make demo``'s job);
- ``doodle``: ``configs/doodle/renoir.yaml`` (512 px; needs the Renoir set under ``--shared``);
- ``dst_gram`` / ``dst_strotss``: DST at 256 px with its defaults on the bundled astronaut / Mona Lisa pair, NBB
  keypoints found and cleaned inline (the full pipeline).

"wall" is the whole run (validation, encoder, targets, writing the outputs); "optimisation" is the last
``seconds`` of its ``losses.csv``. A job that fails prints its error in its row and the others go on. ``--overrides``
are added to every job (``size=64 steps=3`` tries the script quickly on a CPU).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, runnable_precisions, timed_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "semstyle/assets"
DST_PAIR = [f"content={ASSETS / 'content/astronaut.jpg'}", f"style={ASSETS / 'styles/monalisa.jpg'}"]


def jobs(shared: Path) -> dict[str, tuple[Path | None, list[str]]]:
    renoir = shared / "doodle/renoir"
    return {
        "gatys500": (ROOT / "configs/default.yaml", ["size=512", "scales=[]", "steps=500"]),
        "demo": (ROOT / "configs/default.yaml", []),
        "doodle": (
            ROOT / "configs/doodle/renoir.yaml",
            [
                f"style={renoir / 'style.jpg'}",
                f"style_map={renoir / 'style_sem.png'}",
                f"content_map={renoir / 'target_sem.png'}",
            ],
        ),
        "dst_gram": (None, ["method=dst", "base=gram", "size=256", "keypoints=nbb", *DST_PAIR]),
        "dst_strotss": (None, ["method=dst", "base=strotss", "size=256", "keypoints=nbb", *DST_PAIR]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    table = jobs(Path())
    p.add_argument("--jobs", nargs="+", default=list(table), choices=list(table))
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "auto"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared/data")
    p.add_argument("--overrides", nargs="*", default=[])
    args = p.parse_args()
    table = jobs(args.shared)
    device = f"device={args.device}"
    timed_run(ROOT / "configs/default.yaml", [device, "size=64", "scales=[]", "steps=3"])  # start-up, paid once
    print(f"# {machine()}")
    precisions = runnable_precisions(args.precisions, args.device)
    print("| job | precision | wall (s) | optimisation (s) | steps | s/step | final loss |")
    print("|---|---|---|---|---|---|---|")
    for name in args.jobs:
        config, overrides = table[name]
        for precision in precisions:
            try:
                wall, rows = timed_run(config, [*overrides, device, f"precision={precision}", *args.overrides])
            except Exception as error:  # one job's failure must not hide the others' figures
                traceback.print_exc(file=sys.stderr)
                print(f"| {name} | {precision} | failed: {type(error).__name__}: {str(error)[:200]} |||||", flush=True)
                continue
            seconds = float(rows[-1]["seconds"])
            row = f"| {name} | {precision} | {wall:.1f} | {seconds:.1f} | {len(rows)} | {seconds / len(rows):.4f}"
            print(f"{row} | {float(rows[-1]['total']):.6g} |", flush=True)


if __name__ == "__main__":
    main()
