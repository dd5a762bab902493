"""Steps per scale of the coarse-to-fine methods (DST, the doodle) against the objective they end at (issue 17).

    python benchmarks/schedules.py run --job dst_gram --pairs bunny picasso astronaut \
        --schedules 150:150 150:50 150:75 75:75 --out /tmp/sched/dst_gram.jsonl
    python benchmarks/schedules.py run --job doodle --pairs renoir monet bouquet \
        --schedules 100:100 100:50 100:75 100:80 --out /tmp/sched/doodle.jsonl
    python benchmarks/schedules.py report /tmp/sched/*.jsonl

A schedule ``C:S`` runs ``C`` steps at every scale below ``size`` (``coarse_steps``) and ``S`` at ``size``
(``steps``); ``C`` may also list one count per coarse scale, coarse to fine (``100,50:80`` is ``scale_steps=[100,50]
steps=80``), or be ``none``: no coarse scales (``none:100`` is ``scales=[] steps=100``). The first of the list
should be today's default, which the report compares against. Each run is a ``semstyle run`` of the job's config
in its own process with one thread (``OMP_NUM_THREADS=1``): its CPU seconds resist the load of a shared machine,
and two runs may go side by side (``--parallel 2``). A run prints its CPU seconds and the unit (one bare fp32 VGG-19
forward+backward to relu5_1 at 512x384, measured in that process).

The objective a run ends at is the method's own loss at the final size, averaged over the last five steps (DST's
STROTSS base redraws its sample points at every step, so one step's value is noisy). DST's total is dominated by
the warp's terms (keypoint distance and flow smoothness), which the schedule hardly moves, so the report also
gives the image's terms alone (content, style on X and on W(X), TV).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared/data"
ASSETS = ROOT / "semstyle/assets"
PORTRAITS = DATA / "portraits"

PAIRS = {  # name -> overrides giving the content, style (and DST keypoints) of a pair
    "bunny": [
        f"content={PORTRAITS}/dst_bunny/content.jpg",
        f"style={PORTRAITS}/dst_bunny/style.jpg",
        f"content_keypoints={PORTRAITS}/dst_bunny/correspondence_A.txt",
        f"style_keypoints={PORTRAITS}/dst_bunny/correspondence_B.txt",
    ],
    "picasso": [
        f"content={PORTRAITS}/cnnmrf_portrait_picasso/content.jpg",
        f"style={PORTRAITS}/cnnmrf_portrait_picasso/style.jpg",
        "keypoints=nbb",
    ],
    "astronaut": [f"content={ASSETS}/content/astronaut.jpg", f"style={ASSETS}/styles/monalisa.jpg", "keypoints=nbb"],
    "renoir": [str(ROOT / "configs/doodle/renoir.yaml")],
    "monet": [str(ROOT / "configs/doodle/monet.yaml")],
    "bouquet": [str(ROOT / "configs/doodle/bouquet.yaml")],
}
JOBS = {  # name -> overrides of the method at its defaults
    "dst_gram": ["method=dst", "base=gram"],
    "dst_strotss": ["method=dst", "base=strotss"],
    "doodle": [],
}


def one(args: list[str]) -> None:
    """Child process: one ``semstyle run``; prints a JSON line with its CPU seconds, unit and last loss rows."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import bare_unit, timed_run

    unit = bare_unit(clock=time.process_time)
    config = [a for a in args if a.endswith(".yaml")]
    overrides = [a for a in args if not a.endswith(".yaml")]
    cpu, rows = timed_run(config[0] if config else None, overrides, clock=time.process_time)
    rows = [row for row in rows if row["scale"] == rows[-1]["scale"]]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"cpu": cpu, "unit": unit, "peak_mib": usage.ru_maxrss / 1024, "last": rows[-5:]}))


def run_jobs(job: str, pairs: list[str], schedules: list[str], out: Path, parallel: int, extra: list[str]) -> None:
    done = {json.loads(line)["name"] for line in out.read_text().splitlines()} if out.exists() else set()
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    tasks = []
    for schedule in schedules:
        coarse, final = schedule.split(":")
        for pair in pairs:
            name = f"{job}-{pair}-{coarse}-{final}"
            if name not in done:
                if coarse == "none":
                    steps = "scales=[]"
                else:
                    steps = f"scale_steps=[{coarse}]" if "," in coarse else f"coarse_steps={coarse}"
                tasks.append((name, [*PAIRS[pair], *JOBS[job], steps, f"steps={final}", *extra]))

    def launch(task):
        name, args = task
        child = subprocess.run(
            [sys.executable, __file__, "one", *args, "precision=fp32"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if child.returncode != 0:
            print(f"{name}: failed\n{child.stderr[-2000:]}", file=sys.stderr)
            return
        record = {"name": name, "args": args, **json.loads(child.stdout.strip().splitlines()[-1])}
        with out.open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"{name}: {record['cpu']:.0f} CPU-s, total {record['last'][-1]['total']}", flush=True)

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(launch, tasks))


def summary(record: dict) -> tuple[float, float]:
    """Mean of the last rows' total and of the image's terms (every term but the warp's)."""
    rows = record["last"]
    terms = [k for k in rows[-1] if k not in ("scale", "step", "seconds", "total") and not k.startswith("warp")]

    def mean(keys):
        return sum(float(row[k]) for row in rows for k in keys) / len(rows)

    return mean(["total"]), mean(terms)


def report(files: list[Path]) -> None:
    groups: dict[tuple[str, str], list[dict]] = {}
    for f in files:
        for line in f.read_text().splitlines():
            record = json.loads(line)
            job, pair, coarse, final = record["name"].rsplit("-", 3)
            record["schedule"] = f"{coarse} + {final}"
            groups.setdefault((job, pair), []).append(record)
    print("| job | pair | coarse + final steps | CPU s | units | vs first | total | image terms |")
    print("|---|---|---|---|---|---|---|---|")
    for (job, pair), records in groups.items():
        base = records[0]
        base_total, base_image = summary(base)
        for r in records:
            total, image = summary(r)
            units = f"{r['cpu'] / r['unit']:.1f}" if r.get("unit") else "–"
            print(
                f"| {job} | {pair} | {r['schedule']} | {r['cpu']:.0f} | {units} | "
                f"{r['cpu'] / base['cpu']:.2f} | {total:.4g} ({100 * (total / base_total - 1):+.1f} %) | "
                f"{image:.4g} ({100 * (image / base_image - 1):+.1f} %) |"
            )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "one":
        return one(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--job", required=True, choices=list(JOBS))
    r.add_argument("--pairs", nargs="+", required=True, choices=list(PAIRS))
    r.add_argument(
        "--schedules",
        nargs="+",
        required=True,
        help="COARSE:FINAL steps (COARSE: one count, one per coarse scale: 100,50, or none), today's default first",
    )
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--parallel", type=int, default=1)
    r.add_argument("--set", nargs="*", default=[], help="more overrides for every run (e.g. size=128)")
    s = sub.add_parser("report")
    s.add_argument("files", nargs="+", type=Path)
    args = p.parse_args()
    if args.command == "run":
        if not DATA.is_dir() and set(args.pairs) - {"astronaut"}:
            sys.exit(f"these pairs need {DATA} beside the repository")
        run_jobs(args.job, args.pairs, args.schedules, args.out, args.parallel, args.set)
    else:
        report(args.files)


if __name__ == "__main__":
    main()
