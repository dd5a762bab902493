"""torch.compile of the encoder against eager: one bare fp32 VGG-19 forward+backward to relu5_1.

    python benchmarks/bench_compile.py [--size H W]
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-avx2 \
        python benchmarks/bench_compile.py

Prints the eager step, the first compiled call (compilation included), the compiled step and their ratio, and
checks that both give the same features. docs/benchmarks.md (issue 17) has the results and the decision.
Give each ISA setting its own ``TORCHINDUCTOR_CACHE_DIR``: a kernel cached under one setting failed under the other.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import semstyle  # noqa: F401  (before torch: it sets GOMP_SPINCOUNT for NNPACK's threads)

# isort: split
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bare_vgg_step, machine, median_time  # noqa: E402

from semstyle.core.encoder import VGG19Encoder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", nargs=2, type=int, default=[384, 512], metavar=("H", "W"))
    args = ap.parse_args()
    print(machine(), "| kernels:", torch.backends.cpu.get_cpu_capability(), flush=True)
    encoder = VGG19Encoder("avg", "fp32", "cpu", conv="native")
    x = torch.rand(1, 3, *args.size)
    eager = median_time(bare_vgg_step(encoder, x), repeats=5, warmup=1)
    print(f"eager step            {eager:.3f} s", flush=True)
    compiled = torch.compile(encoder)
    start = time.perf_counter()
    bare_vgg_step(compiled, x)()
    print(f"first compiled call   {time.perf_counter() - start:.1f} s (compilation included)", flush=True)
    step = median_time(bare_vgg_step(compiled, x), repeats=5, warmup=1)
    print(f"compiled step         {step:.3f} s = {step / eager:.3f} x eager", flush=True)
    with torch.no_grad():
        a, b = encoder(x, ["relu5_1"])["relu5_1"], compiled(x, ["relu5_1"])["relu5_1"]
    print(f"features, relative L2 difference {float((a - b).norm() / a.norm()):.1e}")


if __name__ == "__main__":
    main()
