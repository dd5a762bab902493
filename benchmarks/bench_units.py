"""Issue 17's goal table in one command: each job's wall time in seconds and in units of one bare fp32 VGG-19
forward+backward (to relu5_1) at 512x384, measured in the same process.

    python benchmarks/bench_units.py [--jobs startup demo doodle dst_gram dst_strotss] [--precision fp32]
        [--conv auto native nnpack]
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/bench_units.py   # AVX2 kernels only

Jobs (each a ``semstyle run`` of the bundled or shared material, as a user would start it):
- ``startup``: ``semstyle run size=abc`` to its one-line config error (a new process);
- ``demo``: ``configs/default.yaml`` (``make demo``'s job);
- ``doodle``: ``configs/doodle/renoir.yaml`` at 512 px (needs ``../shared/data``);
- ``dst_gram`` / ``dst_strotss``: DST at 256 px with its defaults on the bundled astronaut / Mona Lisa pair, NBB
  keypoints found and cleaned inline (the full pipeline).

The units make CPUs comparable: issue 17's goals on a 2-core AVX2 CPU are demo <= 32 units, doodle <= 32,
DST on STROTSS <= 64, DST on Gatys <= 32. With ``ONEDNN_MAX_CPU_ISA=AVX2`` oneDNN and ATen use AVX2 kernels only
and ``precision: auto`` picks fp32 (:func:`semstyle.core.encoder.onednn_isa_allows_bf16`). The unit always runs
PyTorch's own convolutions; ``--conv`` runs every job once per kernel choice (``auto``: NNPACK in fp32 on the CPU).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bare_unit, machine, timed_run  # noqa: E402

from semstyle.conf.vocab import CONVS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "semstyle/assets"
GOALS = {"startup": "<= 1.5 s", "demo": "<= 32", "doodle": "<= 32", "dst_gram": "<= 32", "dst_strotss": "<= 64"}
JOBS = {
    "demo": (ROOT / "configs/default.yaml", []),
    "doodle": (ROOT / "configs/doodle/renoir.yaml", []),
    "dst_gram": (None, ["method=dst", "base=gram", "size=256", "keypoints=nbb"]),
    "dst_strotss": (None, ["method=dst", "base=strotss", "size=256", "keypoints=nbb"]),
}


def startup() -> float:
    """Seconds from a new ``semstyle run size=abc`` process to its one-line error."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "semstyle", "run", "size=abc"], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    return time.perf_counter() - start


def job(name: str, precision: str, conv: str) -> tuple[float, float]:
    """Seconds of the job, and its last logged loss (the final objective, to compare kernel choices)."""
    config, overrides = JOBS[name]
    if name.startswith("dst"):
        overrides = overrides + [
            f"content={ASSETS / 'content/astronaut.jpg'}",
            f"style={ASSETS / 'styles/monalisa.jpg'}",
        ]
    seconds, rows = timed_run(config, [*overrides, f"precision={precision}", f"conv={conv}"])
    return seconds, float(rows[-1]["total"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", nargs="+", default=list(GOALS), choices=list(GOALS))
    p.add_argument("--precision", default="fp32", choices=["fp32", "auto", "bf16"])
    p.add_argument("--conv", nargs="+", default=["auto"], choices=CONVS)
    args = p.parse_args()
    if "doodle" in args.jobs and not (ROOT.parent / "shared/data/doodle/renoir").is_dir():
        sys.exit("doodle: needs ../shared/data/doodle/renoir beside the repository; leave it out with --jobs")
    unit = bare_unit()
    print(f"# {machine()}; precision {args.precision}; unit = bare fp32 VGG-19 fwd+bwd at 512x384 = {unit:.2f} s")
    print("| job | conv | wall (s) | units | goal | last loss |")
    print("|---|---|---|---|---|---|")
    for name in args.jobs:
        if name == "startup":
            print(f"| startup to a config error | - | {startup():.2f} | - | {GOALS[name]} | - |", flush=True)
            continue
        for conv in args.conv:
            seconds, loss = job(name, args.precision, conv)
            row = f"| {name} | {conv} | {seconds:.1f} | {seconds / unit:.1f} | {GOALS[name]} | {loss:.6g} |"
            print(row, flush=True)


if __name__ == "__main__":
    main()
