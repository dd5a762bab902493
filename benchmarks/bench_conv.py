"""The encoder's convolution kernels: PyTorch's own (oneDNN) against NNPACK's Winograd (semstyle/core/nnpack.py).

    python benchmarks/bench_conv.py [--sizes 64 128 256 384 512] [--repeats 5]
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/bench_conv.py   # AVX2 kernels only

Two tables, fp32, on this machine's threads:
- per layer: one convolution of VGG-19's shapes, forward + input gradient, then a ReLU (so that NNPACK's threads
  and PyTorch's OpenMP threads take turns, as in the encoder), native channels-first time over NNPACK's: where
  ``nnpack.worth_it`` draws its line;
- the bare VGG-19 forward+backward to relu5_1 (a 4:3 image of the given long side) with the native kernels in
  channels-last (the encoder's layout with them) and channels-first, and with ``conv="nnpack"`` (NNPACK where
  ``worth_it``, native channels-first elsewhere).
Run it with ``GOMP_SPINCOUNT`` set to compare OpenMP spin settings (semstyle sets 10000 unless it is set).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bare_vgg_step, machine, median_time  # noqa: E402  (first: it imports semstyle before torch)

# isort: split
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from semstyle.core import nnpack  # noqa: E402
from semstyle.core.encoder import VGG19Encoder  # noqa: E402

# (C_in, C_out, stride) of VGG-19's convolutions up to conv5_1
SHAPES = [(3, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 2), (128, 256, 4), (256, 256, 4), (256, 512, 8)]
SHAPES += [(512, 512, 8), (512, 512, 16)]


def per_layer(sizes, repeats) -> None:
    print("\nnative channels-first / NNPACK, per layer (positions: ratio); > 1: NNPACK faster")
    print("| long side | " + " | ".join(f"{a}->{b} /{s}" for a, b, s in SHAPES) + " |")
    print("|---" * (len(SHAPES) + 1) + "|")
    for long in sizes:
        row = []
        for cin, cout, stride in SHAPES:
            h, w = max(1, long * 3 // 4 // stride), max(1, long // stride)
            x = torch.randn(1, cin, h, w, requires_grad=True)
            weight, bias = torch.randn(cout, cin, 3, 3) * 0.05, torch.zeros(cout)

            def native():
                x.grad = None
                F.relu(F.conv2d(x, weight, bias, padding=1)).sum().backward()

            def winograd():
                x.grad = None
                F.relu(nnpack.conv3x3(x, weight, bias)).sum().backward()

            ratio = median_time(native, repeats, warmup=2) / median_time(winograd, repeats, warmup=2)
            row.append(f"{h * w}: {ratio:.2f}")
        print(f"| {long} | " + " | ".join(row) + " |", flush=True)


def whole_pass(sizes, repeats) -> None:
    encoders = {
        "native, channels-last": VGG19Encoder("avg", "fp32", "cpu", conv="native"),
        "native, channels-first": VGG19Encoder("avg", "fp32", "cpu", conv="native", layout="channels_first"),
        "nnpack": VGG19Encoder("avg", "fp32", "cpu", conv="nnpack"),
    }
    print("\nbare VGG-19 forward+backward to relu5_1, seconds (median)")
    print("| long side | " + " | ".join(encoders) + " | native channels-last / nnpack |")
    print("|---" * (len(encoders) + 2) + "|")
    for long in sizes:
        image = torch.rand(1, 3, long * 3 // 4, long)
        t = {name: median_time(bare_vgg_step(e, image), repeats, warmup=2) for name, e in encoders.items()}
        cells = " | ".join(f"{v:.3f}" for v in t.values())
        print(f"| {long} | {cells} | {t['native, channels-last'] / t['nnpack']:.2f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", type=int, default=[64, 128, 256, 384, 512])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--skip-layers", action="store_true", help="only the whole pass")
    args = p.parse_args()
    if not nnpack.nnpack_ready():
        sys.exit("NNPACK is not available in this torch build")
    print(f"# {machine()}; GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT')}")
    if not args.skip_layers:
        per_layer(args.sizes, args.repeats)
    whole_pass(args.sizes, args.repeats)


if __name__ == "__main__":
    main()
