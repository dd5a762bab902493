"""Weight search (semstyle.experiments.search, ``semstyle search``): a seeded 4-trial Optuna search of real 48 px
runs returns the best trial under its constraint, repeats itself, and refuses bad input in one line."""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import pytest
from PIL import Image

from semstyle.cli import main
from semstyle.errors import ConfigError
from semstyle.experiments import grid, search
from semstyle.experiments import sweep as sw

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "configs" / "default.yaml")
# At 48 px and 5 L-BFGS steps from the content, SSIM to the content falls from 1.0 (style_weight 1e-9) to ~0.72
# (1e-5 and above) while the Gram distance to the style falls: "ssim>=0.9" cuts the range, so the constrained best
# is not the unconstrained one.
SEARCH = [
    "--minimize",
    "style_distance",
    "--where",
    "ssim>=0.9",
    "--trials",
    "4",
    "--seed",
    "0",
    "--metric-size",
    "48",
    "style_weight=tag(log,interval(1e-9,1e-3))",
    "size=48",
    "scales=[]",
    "steps=5",
    "precision=fp32",
]


def cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    folder = tmp_path_factory.mktemp("search") / "s"
    code, out, err = cli("search", CONFIG, *SEARCH, "--launcher", "basic", "--out", str(folder))
    return folder, code, out, err


@pytest.mark.slow
def test_search_returns_the_best_trial_under_its_constraint(searched):
    folder, code, out, err = searched
    assert code == 0, err
    data = sw.load_sweep(folder)
    runs = data["runs"]
    assert [r["name"] for r in runs] == ["000", "001", "002", "003"]
    assert all(r["state"] == "done" and (folder / r["folder"] / "output.png").is_file() for r in runs)
    for r in runs:  # each trial: its sampled value, its metrics, and whether it met the constraint
        assert 1e-9 <= float(r["overrides"]["style_weight"]) <= 1e-3
        assert r["objective"] == r["metrics"]["style_distance"]
        assert r["feasible"] == (r["metrics"]["ssim"] >= 0.9)
    feasible = [r for r in runs if r["feasible"]]
    assert feasible, "no trial met ssim>=0.9"
    top = min(feasible, key=lambda r: r["objective"])
    assert data["best"] == top["name"] and search.best(folder)["name"] == top["name"]
    assert f"best: {top['name']} (style_distance=" in out
    # Optuna saw the constraint: every trial that missed it ranks after every trial that met it
    for r in runs:
        assert (r["value"] == r["objective"]) if r["feasible"] else (r["value"] >= search.PENALTY)
    # the plot of the search
    with Image.open(folder / search.PLOT) as im:
        assert im.format == "PNG" and im.size[0] >= 400
    assert "minimize style_distance where ssim>=0.9" in err


@pytest.mark.slow
def test_the_same_search_again_asks_the_same_trials_and_reuses_their_runs(searched):
    folder, *_ = searched
    before = sw.load_sweep(folder)
    stamps = {r["name"]: (folder / r["folder"] / "output.png").stat().st_mtime_ns for r in before["runs"]}
    code, out, err = cli("search", CONFIG, *SEARCH, "--launcher", "basic", "--out", str(folder))
    assert code == 0, err
    after = sw.load_sweep(folder)
    assert [r["overrides"] for r in after["runs"]] == [r["overrides"] for r in before["runs"]]
    assert {r["name"]: (folder / r["folder"] / "output.png").stat().st_mtime_ns for r in after["runs"]} == stamps
    assert after["best"] == before["best"]


def test_constraints_and_penalties():
    assert grid.parse_constraint("ssim>=0.4") == ("ssim", ">=", 0.4)
    assert grid.parse_constraint(" psnr < 1e2 ") == ("psnr", "<", 100.0)
    assert search.violation({"ssim": 0.5}, [("ssim", ">=", 0.4)]) == 0
    assert search.violation({"ssim": 0.3}, [("ssim", ">=", 0.4)]) == pytest.approx(0.1)
    assert search.violation({"ssim": 0.4}, [("ssim", ">", 0.4)]) > 0  # a strict bound met with equality misses
    assert search.violation({}, [("ssim", ">=", 0.4)]) == math.inf
    # minimising: met < missed by a little < missed by a lot < failed, whatever the objective's scale (Gram
    # distances reach 1e11 at 48 px)
    values = [
        search.penalised(1e11, 0.0, 1.0),
        search.penalised(1.0, 0.01, 1.0),
        search.penalised(1.0, 0.5, 1.0),
        search.penalised(None, 0.0, 1.0),
    ]
    assert values == sorted(values) and len(set(values)) == 4
    # maximising: the same order, negated
    assert search.penalised(0.2, 0.0, -1.0) > search.penalised(5.0, 0.01, -1.0) > search.penalised(None, 0, -1.0)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--where", "ssim=>0.4"], "--where 'ssim=>0.4': expected METRIC OP NUMBER"),
        (["--where", "sharpness>=1"], "--where 'sharpness': not a metric"),
        (["--minimize", "nosuch"], "--minimize 'nosuch': not a metric"),
        (["steps=interval(0.5,3.5)"], "a trial with style_weight=1e-07, steps=0.5: steps: must be an integer"),
        (["stlye_weight=interval(1e-7,1e-5)"], "unknown config key 'stlye_weight'"),
        (["content=missing.jpg"], "a trial with style_weight=1e-07: content image missing.jpg: file not found"),
        (["size=20,48"], "a trial with style_weight=1e-07, size=20: content image"),
        (["style_weight=tag(log,interval(0,1e-5))"], "a log interval needs a positive lower end"),
        (["style_weight=interval(1e-5,1e-7)"], "the interval is empty"),
        (["content_layers=[conv4_2],[conv5_2]"], "Optuna chooses among numbers and strings only"),
        (["style_weight=1e-6"], "give at least one KEY=RANGE"),
        (["--launcher", "slurm"], "--launcher: unknown launcher 'slurm'"),
        (["--trials", "0"], "--trials: must be an integer >= 1, got 0"),
        (["hydra.sweeper.sampler.sed=1"], "hydra: Could not override 'hydra.sweeper.sampler.sed'"),
    ],
)
def test_bad_input_is_one_line_before_any_run(args, message, tmp_path):
    folder = tmp_path / "s"
    base = ["--minimize", "style_distance", "style_weight=interval(1e-7,1e-5)", "size=48"]
    if any(a.startswith("--minimize") for a in args):
        base = base[2:]
    if any(a.startswith("style_weight=") for a in args):
        base = [a for a in base if not a.startswith("style_weight=")]
    code, out, err = cli("search", CONFIG, *base, *args, "--out", str(folder))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("semstyle: error: ") and message in err, err
    assert not folder.exists()


def test_a_goal_is_required(tmp_path):
    code, _, err = cli("search", CONFIG, "style_weight=interval(1e-7,1e-5)", "--out", str(tmp_path / "s"))
    assert code == 2 and "one of the arguments --minimize --maximize is required" in err
    with pytest.raises(ConfigError, match="give one of --minimize METRIC or --maximize METRIC"):
        search.run_search(CONFIG, {"style_weight": "interval(1e-7,1e-5)"}, tmp_path / "s", "ssim", "ssim")
