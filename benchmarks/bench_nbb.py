"""Neural Best-Buddies: wall time, peak memory and accuracy (PCK on a known warp), full and ``--fast``.

    python benchmarks/bench_nbb.py [--repeats 3] [--precision auto] [--device auto]

Pairs: a 224 px pair (NBB's cat/lion demo when ../shared/data is present, else astronaut/Mona Lisa at 224) and a
256 px long-side pair (astronaut 256x256 / Mona Lisa 171x256, different aspect ratios, DST's working size). Each
configuration runs in a fresh subprocess so its peak RSS is its own; "extra" is the peak minus the RSS just before
the first NBB call (encoder weights and images already loaded). PCK@0.05: the fraction of returned pairs within 5 %
of the diagonal of their true position on a known warp + restyling of the astronaut photo (tests/test_nbb.py).
"CPU time, 1 thread" is the process CPU time of a single-threaded run: robust to other load on the machine, and
an upper bound for the wall time on an idle machine with 2 threads.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import semstyle  # noqa: F401  (before torch: it sets GOMP_SPINCOUNT for NNPACK's threads)

# isort: split
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median_time, peak_rss_mib  # noqa: E402

from semstyle.core.encoder import vgg19_encoder  # noqa: E402
from semstyle.core.image import load_image  # noqa: E402
from semstyle.geometry.keypoints import nbb_keypoints  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def pair(name: str):
    if name == "224" and (SHARED / "portraits/nbb_cat_lion").is_dir():
        d = SHARED / "portraits/nbb_cat_lion"
        return "cat/lion 224x224", load_image(d / "original_A.png"), load_image(d / "original_B.png"), 224
    size = int(name)
    a = load_image(ROOT / "assets/content/astronaut.jpg", size)
    b = load_image(ROOT / "assets/styles/monalisa.jpg", size)
    return f"astronaut {a.shape[-1]}x{a.shape[-2]} / Mona Lisa {b.shape[-1]}x{b.shape[-2]}", a, b, size


def one(name: str, fast: bool, repeats: int, precision: str, device: str) -> dict:
    sys.path.insert(0, str(ROOT / "tests" / "geometry"))
    from known_warp import known_warp, pck  # noqa: E402  (the tests' ground-truth warp)

    label, a, b, size = pair(name)
    encoder = vgg19_encoder("max", precision, device)
    rss0 = peak_rss_mib()
    result = nbb_keypoints(a, b, fast=fast, size=size, encoder=encoder)
    seconds = median_time(lambda: nbb_keypoints(a, b, fast=fast, size=size, encoder=encoder), repeats, warmup=0)
    peak = peak_rss_mib()
    # Load-robust figure: CPU seconds of a single-threaded run (wall times on a shared machine swing several-fold).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cpu = []
    for _ in range(repeats):
        t = time.process_time()
        nbb_keypoints(a, b, fast=fast, size=size, encoder=encoder)
        cpu.append(time.process_time() - t)
    torch.set_num_threads(threads)
    photo = load_image(ROOT / "assets/content/astronaut.jpg", size)
    partner, g = known_warp(photo, (size - size // 8, size + size // 8))
    warped = nbb_keypoints(photo, partner, fast=fast, size=size, encoder=encoder)
    return {
        "pair": label,
        "mode": "fast" if fast else "full",
        "seconds": seconds,
        "cpu1": sorted(cpu)[len(cpu) // 2],
        "pairs": result.candidates,
        "peak_mib": peak,
        "extra_mib": peak - rss0,
        "precision": encoder.precision,
        "pck": pck(warped.points_a, warped.points_b, g, photo.shape[-2:]),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--precision", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--one", nargs=2, metavar=("PAIR", "MODE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1] == "fast", args.repeats, args.precision, args.device)))
        return
    print(f"# {machine()}; load average {open('/proc/loadavg').read().split()[0]} at {time.strftime('%H:%M')}")
    print(
        "| pair | mode | precision | wall time (s) | CPU time, 1 thread (s) | peak RSS (MiB) | extra (MiB) | "
        "best buddies | PCK@0.05 (warp) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ("224", "256"):
        for mode in ("full", "fast"):
            cmd = [
                sys.executable,
                __file__,
                "--one",
                name,
                mode,
                "--repeats",
                str(args.repeats),
                "--precision",
                args.precision,
                "--device",
                args.device,
            ]
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            print(
                f"| {r['pair']} | {r['mode']} | {r['precision']} | {r['seconds']:.2f} | {r['cpu1']:.2f} | "
                f"{r['peak_mib']:.0f} | {r['extra_mib']:.0f} | {r['pairs']} | {r['pck']:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
