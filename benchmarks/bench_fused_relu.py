"""NNPACK's convolutions with the ReLU applied as the output is written (the encoder's default) against the same
convolutions followed by ``F.relu``: a VGG-19 forward+backward, interleaved repeats in one process.

    python benchmarks/bench_fused_relu.py [--size 384 512] [--repeats 15] [--layers relu5_1 | gatys]

``gatys`` returns conv1_1 … conv5_1 and conv4_2, as the Gatys objective reads them: those convolutions keep their
separate ReLU (their own output is wanted), the others fuse. Times are CPU seconds of this process
(``time.process_time``), which resist the load of a shared machine; divide by the thread count for wall time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import semstyle  # noqa: F401  (before torch: it sets GOMP_SPINCOUNT for NNPACK's threads)

# isort: split
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

from semstyle.core import nnpack  # noqa: E402
from semstyle.core.encoder import VGG19Encoder  # noqa: E402

GATYS = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv4_2", "conv5_1"]


def unfused(x, weight, bias, relu=False):
    """The convolution alone, then ``F.relu``: the encoder's forward before the fusion."""
    out = nnpack._Conv3x3.apply(x, weight, bias, False)
    return F.relu(out) if relu else out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, nargs=2, default=[384, 512], metavar=("H", "W"))
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--layers", default="relu5_1", choices=["relu5_1", "gatys"])
    args = p.parse_args()
    if not nnpack.nnpack_ready():
        sys.exit("this torch build has no working NNPACK")
    encoder = VGG19Encoder("avg", "fp32", "cpu", conv="nnpack")
    layers = GATYS if args.layers == "gatys" else ["relu5_1"]
    image = torch.rand(1, 3, *args.size)

    def step():
        x = image.clone().requires_grad_(True)
        sum(f.square().mean() for f in encoder(x, layers).values()).backward()

    variants = {"fused": nnpack.conv3x3, "unfused": unfused}
    times = {name: [] for name in variants}
    for rounds in (2, args.repeats):  # two warm-up rounds, then the timed ones
        for _ in range(rounds):
            for name, conv in variants.items():
                nnpack.conv3x3 = conv
                start = time.process_time()
                step()
                if rounds == args.repeats:
                    times[name].append(time.process_time() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"# {machine()}; {args.size[0]}x{args.size[1]}, layers {args.layers}, median CPU s of {args.repeats}")
    print(
        f"fused {median['fused']:.3f} s, unfused {median['unfused']:.3f} s: {median['unfused'] / median['fused']:.3f}x"
    )


if __name__ == "__main__":
    main()
