"""Time to quality of Gatys schedules: a fixed objective against wall time.

    # run (one JSON per content/style pair; several pairs may run as separate processes)
    python benchmarks/time_to_quality.py run --pair assets/content/tubingen.jpg assets/styles/starry_night.jpg \
        --out /tmp/ttq/tubingen.json
    # table + curve picture from those files
    python benchmarks/time_to_quality.py report /tmp/ttq/*.json --plot docs/benchmarks/time_to_quality.png

The fixed objective is the one of ``configs/default.yaml`` (Gatys: content conv4_2 weight 1e-3, Gram on
conv1_1..conv5_1 weight 1e-6, average pooling) evaluated at the final size (``--size``, default 512) on the image a
schedule has reached, its targets computed at that size. Each schedule is a list of ``(long side, steps)`` stages,
coarse to fine, started from the content image as the default config does; between stages the image is upsampled.
Wall time counts the optimisation steps and each stage's target set-up, not the objective evaluations made for
the curve (at coarse stages: the image upsampled and evaluated every ``--eval-every`` steps; at the final stage the
loss of step ``k + 1`` is the objective after step ``k``, which costs nothing extra).

A stop rule (:mod:`semstyle.engine.stopping`) does not change the trajectory up to the step where it fires, so its
results are read off the full final stage: the rule is fed the losses the optimisation loop sees, and the result is
the image after the step where it fired. Times are also printed in units of one bare fp32 VGG-19 forward+backward
to relu5_1 at 512x384 (channels-first, as the unit was defined in issue 17; the channels-last pass is printed too),
measured in the same process before and after the runs.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import semstyle  # noqa: F401  (before torch: it sets GOMP_SPINCOUNT for NNPACK's threads)

# isort: split
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bare_unit, lbfgs_without_last_step, machine  # noqa: E402

from semstyle.api import load_config  # noqa: E402
from semstyle.conf.gatys import style_plan
from semstyle.core.encoder import vgg19_encoder  # noqa: E402
from semstyle.core.image import load_image, resize  # noqa: E402
from semstyle.engine import make_optimizer  # noqa: E402
from semstyle.engine.loop import LbfgsSpikeGuard  # noqa: E402
from semstyle.engine.stopping import StopRule  # noqa: E402
from semstyle.methods.gatys import build_objective, set_targets  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def schedules_for(size: int) -> dict[str, list[tuple[int, int]]]:
    """The compared schedules for final long side ``size`` (512: today's 256 then 512, 100 steps each)."""
    root2 = 2**0.5
    return {
        "today": [(size // 2, 100), (size, 100)],  # configs/default.yaml at size 512
        "single": [(size, 100)],
        "sqrt2": [(round(size / 2 / root2), 40), (size // 2, 30), (round(size / root2), 20), (size, 80)],
    }


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
clock = time.process_time  # set from --clock: CPU seconds of this process resist the load of a shared machine
RULES = [(2e-3, 10), (1e-3, 10), (5e-4, 10)]  # (threshold, window) read off the final stage; min_steps 20


def parse_schedule(text: str) -> list[tuple[int, int]]:
    """``"181:40,256:30,512:80"`` -> ``[(181, 40), (256, 30), (512, 80)]``."""
    return [(int(a), int(b)) for a, b in (part.split(":") for part in text.split(","))]


def bare_units() -> dict[str, float]:
    """The unit (:func:`common.bare_unit`) on ``clock``, with channels-first and with channels-last convolutions."""
    return {layout: bare_unit(clock, layout) for layout in ("channels_first", "channels_last")}


def carry_pairs(opt, x, pairs, shape_from) -> None:
    """Give ``opt`` (a fresh L-BFGS on ``x``) the curvature ``pairs`` ``[(s, y), ...]`` of the stage before, at
    ``shape_from``, upsampled bilinearly; ``y`` divided by the area ratio, since the objective is normalised per
    pixel (``f(up(x)) ≈ f_coarse(x)``, so the gradient spreads over four times the pixels and ``y·s`` keeps its
    value). Its first step is then taken along ``-H g`` instead of ``-g``."""
    shape = tuple(x.shape[-2:])
    area = (shape[0] * shape[1]) / (shape_from[0] * shape_from[1])

    def up(v):
        return F.interpolate(v.view(1, 3, *shape_from), size=shape, mode="bilinear", align_corners=False).reshape(-1)

    pairs = [(up(s), up(y) / area) for s, y in pairs]
    pairs = [(s, y) for s, y in pairs if float(y.dot(s)) > 1e-10]  # as L-BFGS keeps only positive curvature
    if not pairs:
        return
    s_last, y_last = pairs[-1]
    opt.state[x].update(
        old_stps=[s for s, _ in pairs], old_dirs=[y for _, y in pairs], ro=[1.0 / float(y.dot(s)) for s, y in pairs],
        H_diag=float(s_last.dot(y_last) / y_last.dot(y_last)),
    )  # fmt: skip
    lbfgs_without_last_step(opt, x)


def run_schedule(
    cfg,
    content,
    style,
    stages,
    size: int,
    eval_every: int,
    history: int | None = None,
    max_step: float | None = None,
    carry: bool = False,
) -> dict:
    """Run one schedule (L-BFGS with ``history`` pairs, None: the engine's; steps that move a pixel by more than
    ``max_step`` shortened as the engine does, None: plain L-BFGS, no spike guard; ``carry``: each stage's L-BFGS
    starts with the pairs of the stage before, :func:`carry_pairs`); returns its curve
    ``[(seconds, objective, stage, step)]`` and the final stage's losses."""
    plan = style_plan(cfg, 1)
    encoder = vgg19_encoder(cfg.pooling, cfg.precision, cfg.device)
    # the fixed objective: targets at the final size
    judge = build_objective(cfg, plan, encoder)
    content_final = resize(content, size)
    set_targets(judge, content_final, [resize(style, max(16, round(size * cfg.style_scale)))])
    final_shape = tuple(content_final.shape[-2:])

    @torch.no_grad()
    def objective_at_final(image):
        return float(judge(resize(image, final_shape) if tuple(image.shape[-2:]) != final_shape else image)[0])

    runner = build_objective(cfg, plan, encoder)
    curve = [(0.0, objective_at_final(content), -1, 0)]
    seconds, image, final_losses, pairs, shape_before = 0.0, None, [], [], None
    for index, (long_side, steps) in enumerate(stages):
        final = index == len(stages) - 1
        t0 = clock()
        content_s = resize(content, long_side)
        set_targets(runner, content_s, [resize(style, max(16, round(long_side * cfg.style_scale)))])
        start = content_s.clone() if image is None else resize(image, tuple(content_s.shape[-2:]))
        x = start.contiguous().requires_grad_(True)
        opt = make_optimizer(cfg.optimizer, [x], cfg.lr, history)
        if carry and pairs:
            carry_pairs(opt, x, pairs, shape_before)
        # the engine's step limit alone: an infinite factor never undoes a step
        guard = None if max_step is None else LbfgsSpikeGuard(opt, factor=math.inf, max_step=max_step)
        seconds += clock() - t0
        losses = []

        def closure():
            opt.zero_grad(set_to_none=True)
            total, _ = runner(x)
            total.backward()
            losses.append(float(total.detach()))
            return total

        # not the engine's run_steps: this loop times each step on `clock` apart from the curve's evaluations, and
        # runs L-BFGS with the step limit alone or as plain torch L-BFGS, never with the engine's spike guard
        for step in range(steps):
            t0 = clock()
            if guard is not None:
                guard.before_step()
            opt.step(closure)
            if guard is not None:
                guard.after_step(losses[-1])
            with torch.no_grad():
                x.clamp_(0, 1)
            seconds += clock() - t0
            if final:
                curve.append((seconds, None, index, step + 1))  # objective = the next step's loss, filled below
            elif (step + 1) % eval_every == 0 or step + 1 == steps:
                curve.append((seconds, objective_at_final(x.detach()), index, step + 1))
        image = x.detach()
        state = opt.state[x]
        pairs, shape_before = list(zip(state.get("old_stps", []), state.get("old_dirs", []))), tuple(x.shape[-2:])
        if final:
            final_losses = losses + [objective_at_final(image)]
            k = len(curve) - steps
            for i in range(steps):  # the loss evaluated at step i + 2 is the objective of the image after step i + 1
                t, _, s, n = curve[k + i]
                curve[k + i] = (t, final_losses[i + 1], s, n)
        print(f"  stage {long_side}px x {steps}: {seconds:.1f} s, objective {curve[-1][1]:.2f}", flush=True)
    return {"stages": stages, "curve": curve, "final_losses": final_losses}


def read_stop(result: dict, threshold: float, window: int, min_steps: int = 20) -> tuple[float, float, int]:
    """``(seconds, objective, final-stage steps)`` where the stop rule would end the final stage."""
    rule = StopRule("rel_improvement", threshold, window, min_steps)
    losses, steps = result["final_losses"], result["stages"][-1][1]
    final_points = [p for p in result["curve"] if p[2] == len(result["stages"]) - 1]
    for step in range(1, steps + 1):  # the loop sees losses[step - 1] after step `step`
        if rule.update(losses[step - 1]):
            break
    t, obj, _, n = final_points[step - 1]
    return t, obj, n


def cmd_run(args):
    torch.manual_seed(0)
    content = load_image(args.pair[0])
    style = load_image(args.pair[1])
    cfg = load_config(
        str(ROOT / "configs/default.yaml"),
        [f"content={args.pair[0]}", f"style={args.pair[1]}", "precision=fp32", "device=cpu", "progress=false"],
    )
    global clock
    clock = CLOCKS[args.clock]
    schedules = schedules_for(args.size)
    for text in args.schedule or []:
        name, spec = text.split("=")
        schedules[name] = parse_schedule(spec)
    if args.only:
        schedules = {k: v for k, v in schedules.items() if k in args.only}
    print(f"# {machine()}; {args.clock} seconds; pair {args.pair[0]} / {args.pair[1]}", flush=True)
    units = [bare_units()]
    results = {}

    def save() -> None:  # after every schedule, so a long study that stops keeps what it measured
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        record = {"machine": machine(), "clock": args.clock, "pair": args.pair, "size": args.size, "units": units}
        record["history"], record["max_step"], record["carry_pairs"] = args.history, args.max_step, args.carry_pairs
        Path(args.out).write_text(json.dumps({**record, "results": results}))

    for name, stages in schedules.items():
        print(f"{name}: {stages}", flush=True)
        results[name] = run_schedule(
            cfg, content, style, stages, args.size, args.eval_every, args.history, args.max_step, args.carry_pairs
        )
        save()
    units.append(bare_units())
    save()


def rows_of(data: dict) -> list[dict]:
    """One row per (schedule variant): seconds, units, objective, and that objective over today's default."""
    unit = statistics.median(u["channels_first"] for u in data["units"])
    res = data["results"]
    reference = res["today"]["curve"][-1][1] if "today" in res else None
    rows = []

    def add(name, seconds, objective, steps):
        rows.append(
            {
                "schedule": name,
                "seconds": seconds,
                "units": seconds / unit,
                "objective": objective,
                "vs_today": objective / reference - 1 if reference else float("nan"),
                "steps": steps,
            }
        )

    for name, result in res.items():
        stages = result["stages"]
        t, obj = result["curve"][-1][:2]
        add(name, t, obj, "+".join(f"{n}@{s}" for s, n in stages))
        final_points = [p for p in result["curve"] if p[2] == len(stages) - 1]
        size, total = stages[-1]
        for n in (30, 50, 60, 70, 80):
            if n < total:
                t, obj = final_points[n - 1][:2]
                add(f"{name}, {n} at {size}", t, obj, "+".join(f"{m}@{s}" for s, m in stages[:-1] + [(size, n)]))
        for threshold, window in RULES:
            t, obj, n = read_stop(result, threshold, window)
            add(
                f"{name} + stop {threshold:g}/{window}",
                t,
                obj,
                "+".join(f"{m}@{s}" for s, m in stages[:-1] + [(size, n)]),
            )
    return rows


def cmd_report(args):
    datas = [json.loads(Path(p).read_text()) for p in args.files]
    print(f"# {datas[0]['machine']}; {datas[0].get('clock', 'wall')} seconds")
    per_pair = {}
    for data in datas:
        name = f"{Path(data['pair'][0]).stem} / {Path(data['pair'][1]).stem}"
        unit = statistics.median(u["channels_first"] for u in data["units"])
        unit_cl = statistics.median(u["channels_last"] for u in data["units"])
        print(
            f"\n## {name}: bare fp32 VGG-19 fwd+bwd at 512x384 = {unit:.2f} s channels-first, {unit_cl:.2f} s "
            f"channels-last\n"
        )
        print("| schedule | steps | seconds | units | objective | vs today |")
        print("|---|---|---|---|---|---|")
        for row in rows_of(data):
            per_pair.setdefault(row["schedule"], []).append(row)
            print(
                f"| {row['schedule']} | {row['steps']} | {row['seconds']:.0f} | {row['units']:.1f} "
                f"| {row['objective']:.1f} | {row['vs_today']:+.1%} |"
            )
    print(f"\n## all {len(datas)} pairs: worst objective vs today, mean time in units\n")
    print("| schedule | worst vs today | mean units | units vs today |")
    print("|---|---|---|---|")
    today_units = statistics.mean(r["units"] for r in per_pair.get("today", [{"units": float("nan")}]))
    for name, rows in per_pair.items():
        if len(rows) != len(datas):
            continue
        mean_units = statistics.mean(r["units"] for r in rows)
        print(
            f"| {name} | {max(r['vs_today'] for r in rows):+.1%} | {mean_units:.1f} | {mean_units / today_units:.2f} |"
        )
    if args.plot:
        plot(datas, args.plot)


def plot(datas, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(datas), figsize=(4.2 * len(datas), 3.6), dpi=100, squeeze=False)
    for ax, data in zip(axes[0], datas):
        unit = statistics.median(u["channels_first"] for u in data["units"])
        res = data["results"]
        reference = res["today"]["curve"][-1][1] if "today" in res else None
        for name, result in res.items():
            t = [p[0] / unit for p in result["curve"]]
            y = [p[1] for p in result["curve"]]
            ax.plot(t, y, label=name, lw=1.4)
        if reference:
            ax.axhline(reference * 1.02, color="grey", ls=":", lw=1, label="today's result + 2 %")
        lo = min(p[1] for r in res.values() for p in r["curve"])
        ax.set_ylim(lo * 0.95, lo * 2.0)
        ax.set_title(f"{Path(data['pair'][0]).stem} / {Path(data['pair'][1]).stem}", fontsize=9)
        ax.set_xlabel("time (bare fp32 VGG fwd+bwd at 512x384)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"Gatys objective at {datas[0]['size']} px")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    print(f"\nplot: {path}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the schedules on one content/style pair, write JSON")
    r.add_argument("--pair", nargs=2, required=True, metavar=("CONTENT", "STYLE"))
    r.add_argument("--out", required=True)
    r.add_argument("--size", type=int, default=512)
    r.add_argument("--eval-every", type=int, default=10)
    r.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="cpu",
        help="cpu: process CPU seconds (run with OMP_NUM_THREADS=1 on a shared machine); wall: wall time",
    )
    r.add_argument("--schedule", nargs="*", help="extra schedules NAME=SIZE:STEPS,SIZE:STEPS")
    r.add_argument("--only", nargs="*", help="run only these schedule names")
    r.add_argument(
        "--history", type=int, help="L-BFGS's curvature pairs (default: LBFGS_HISTORY, as the run key lbfgs_history)"
    )
    r.add_argument(
        "--max-step",
        type=float,
        help="shorten steps that move a pixel by more than this, as the engine does (LBFGS_MAX_PIXEL_STEP; "
        "default: plain L-BFGS)",
    )
    r.add_argument(
        "--carry-pairs",
        action="store_true",
        help="start each stage's L-BFGS with the upsampled curvature pairs of the stage before (not kept: "
        "docs/benchmarks.md, *Start-up of a run*)",
    )
    s = sub.add_parser("report", help="table and plot from the JSON files")
    s.add_argument("files", nargs="+")
    s.add_argument("--plot")
    args = p.parse_args(argv)
    cmd_run(args) if args.cmd == "run" else cmd_report(args)


if __name__ == "__main__":
    main()
