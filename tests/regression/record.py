"""Record the regression loss curves: ``python tests/regression/record.py [NAME ...]`` from the repository root.

Run it only when a change of results is intended, and say so in the commit message.
"""

from __future__ import annotations

import csv
import io
import platform
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cases import CASES, COMMON  # noqa: E402


def curve(name: str) -> str:
    """Run case ``name`` in a temporary folder; its ``losses.csv`` without the wall-time column."""
    from semstyle import run

    config, overrides, _ = CASES[name]
    with tempfile.TemporaryDirectory() as tmp:
        path = run(config, overrides + COMMON + [f"out_dir={tmp}/run"])
        rows = list(csv.DictReader((path / "losses.csv").read_text().splitlines()))
    out = io.StringIO()
    columns = [c for c in rows[0] if c != "seconds"]
    writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def main(names) -> None:
    for name in names or CASES:
        (HERE / f"{name}.csv").write_text(curve(name))
        print(f"{name}: {HERE / (name + '.csv')}")
    (HERE / "MACHINE.txt").write_text(
        f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads\n"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
