"""Products with aligned output rows (``semstyle/core/aligned.py``): the plain product against the aligned one, and
STROTSS's two set terms (forward + backward) with the alignment on and off, on STROTSS-sized sets.

    python benchmarks/bench_aligned.py [--samples 2048] [--style-samples 5000] [--repeats 9]
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/bench_aligned.py   # AVX2 kernels only

Every pair is timed in turn (``common.interleaved_medians``), fp32, with freed memory kept as the encoder keeps it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import semstyle  # noqa: F401  (before torch: it sets GOMP_SPINCOUNT)

# isort: split
import torch

from semstyle.core import aligned
from semstyle.core.allocator import keep_freed_memory
from semstyle.losses.strotss import feature_moments, moment_loss, self_similarity_loss

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_medians, machine  # noqa: E402

CHANNELS = 2179  # STROTSS's hypercolumn: 3 + 64·2 + 128·2 + 256·3 + 512·2


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=2048, help="rows of the image's set (DST: 2048, STROTSS: 1024)")
    p.add_argument("--style-samples", type=int, default=5000)
    p.add_argument("--repeats", type=int, default=9)
    args = p.parse_args()
    keep_freed_memory()
    torch.manual_seed(0)
    n, c = args.samples, CHANNELS
    a, sign = torch.randn(n, c), torch.randn(c, c).sign()
    moments = feature_moments(torch.randn(args.style_samples, c))
    x = torch.randn(n, c).relu()
    content = torch.randn(n, c).relu()

    def moment_step():
        leaf = x.clone().requires_grad_(True)
        moment_loss(leaf, moments).backward()

    def self_similarity_step():
        leaf = x.clone().requires_grad_(True)
        self_similarity_loss(leaf, content).backward()

    def unaligned(fn):
        def run():
            helps = aligned._helps
            aligned._helps = lambda like, cols: False
            try:
                fn()
            finally:
                aligned._helps = helps

        return run

    cases = {
        f"X_cᵀX_c ({c}, {c})": (lambda: a.T @ a, lambda: aligned.mm(a.T, a)),
        f"X_c·sign(D) ({n}, {c})": (lambda: a @ sign, lambda: aligned.mm(a, sign)),
        "moment term, forward + backward": (unaligned(moment_step), moment_step),
        "self-similarity term, forward + backward": (unaligned(self_similarity_step), self_similarity_step),
    }
    print(f"# {machine()}; {n} samples x {c} channels, fp32, medians of {args.repeats} (ms)")
    print("| what | plain | aligned rows | ratio |")
    print("|---|---|---|---|")
    for name, (plain, fast) in cases.items():
        times = interleaved_medians({"plain": plain, "aligned": fast}, args.repeats)
        print(
            f"| {name} | {times['plain'] * 1e3:.1f} | {times['aligned'] * 1e3:.1f} | "
            f"{times['plain'] / times['aligned']:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
