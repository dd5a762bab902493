"""Sweeps (semstyle.experiments.sweep, ``semstyle sweep``) on real Hydra launchers with real runs at 32-48 px:
the sweep folder, skipping finished runs, resuming interrupted ones, a failed run among finished ones, the same
losses on joblib, submitit's local executor and a local Ray instance, and bad input refused before any run."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from semstyle.cli import main
from semstyle.errors import ConfigError
from semstyle.experiments import sweep as sw

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "configs" / "default.yaml")
GRID = ["style_weight=1e-7,1e-5", "content_layers=[conv4_2],[conv5_2]"]
BASE = ["size=48", "scales=[]", "steps=3"]


def cli(*argv) -> tuple[int, str, str]:
    """``semstyle ARGV`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def final_losses(folder: Path) -> dict[str, str]:
    """Each run's last logged total loss, as written (text: equal means equal to the last digit printed)."""
    out = {}
    for run in sw.load_sweep(folder)["runs"]:
        if run["state"] != "done":
            continue
        with open(folder / run["folder"] / "losses.csv") as f:
            out[run["name"]] = list(csv.DictReader(f))[-1]["total"]
    return out


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A 2 x 2 sweep on the joblib launcher (2 workers) whose run 003 cannot start: an unreadable checkpoint waits
    in runs/003.partial, as a crash can leave one."""
    folder = tmp_path_factory.mktemp("sweep") / "grid"
    (folder / "runs" / "003.partial").mkdir(parents=True)
    (folder / "runs" / "003.partial" / "checkpoint.safetensors").write_bytes(b"not a checkpoint")
    code, out, err = cli("sweep", CONFIG, *GRID, *BASE, "--launcher", "joblib", "--jobs", "2", "--out", str(folder))
    return folder, code, out, err


@pytest.mark.slow
def test_sweep_writes_a_run_folder_per_combination_and_reports_the_failed_one(grid):
    folder, code, out, err = grid
    data = sw.load_sweep(folder)
    assert data["params"] == {"style_weight": ["1e-07", "1e-05"], "content_layers": ["[conv4_2]", "[conv5_2]"]}
    assert data["launcher"] == "joblib" and data["overrides"] == BASE
    runs = {r["name"]: r for r in data["runs"]}
    assert list(runs) == ["000", "001", "002", "003"]
    expected = [("1e-07", "[conv4_2]"), ("1e-07", "[conv5_2]"), ("1e-05", "[conv4_2]"), ("1e-05", "[conv5_2]")]
    for (name, run), (weight, layers) in zip(runs.items(), expected):
        assert run["overrides"] == {"style_weight": weight, "content_layers": layers}
    for name in ("000", "001", "002"):  # ordinary run folders, each with its own values
        assert runs[name]["state"] == "done" and runs[name]["error"] is None and runs[name]["seconds"] > 0
        assert runs[name]["threads"] == max(1, sw.cores() // 2)  # 2 workers share the cores
        run_dir = folder / "runs" / name
        assert {"config.yaml", "output.png", "losses.csv"} <= {p.name for p in run_dir.iterdir()}
        config = OmegaConf.load(run_dir / "config.yaml")
        weight, layers = expected[int(name)]
        assert config.style_weight == float(weight) and list(config.content_layers) == [layers[1:-1]]
        assert config.size == 48 and config.steps == 3 and config.out_dir == str(run_dir.resolve())
        # the run names the command that made it: the sweep's, not the worker's
        assert f"# command: {data['command']}\n" in (run_dir / "config.yaml").read_text()
    # the failed run: its state and one-line error, the others unaffected, exit code 1 with a table of failures
    assert runs["003"]["state"] == "failed"
    assert "checkpoint" in runs["003"]["error"] and "\n" not in runs["003"]["error"]
    assert (folder / "runs" / "003.partial").is_dir()  # the user's material is never removed
    assert code == 1
    assert "1 of 4 runs failed" in err and "003" in err.split("runs failed:")[1]
    assert all(f"00{i}   done" in out for i in range(3))
    # Hydra's own files stay in .hydra
    assert sorted(p.name for p in folder.iterdir()) == [
        ".hydra",
        ".sweep.lock",
        ".sweep.run.lock",
        "runs",
        "sweep.json",
    ]


@pytest.mark.slow
def test_rerun_skips_finished_runs_and_runs_the_rest(grid, monkeypatch):
    folder, *_ = grid
    shutil.rmtree(folder / "runs" / "003.partial")  # the user clears the cause of the failure
    stamps = {n: (folder / "runs" / n / "output.png").stat().st_mtime_ns for n in ("000", "001", "002")}
    code, out, err = cli("sweep", CONFIG, *GRID, *BASE, "--launcher", "joblib", "--jobs", "2", "--out", str(folder))
    assert code == 0, err
    assert "3 finished, 1 to run" in err
    assert {n: (folder / "runs" / n / "output.png").stat().st_mtime_ns for n in stamps} == stamps
    assert [r["state"] for r in sw.load_sweep(folder)["runs"]] == ["done"] * 4
    # once all are finished, a re-run launches nothing at all
    monkeypatch.setattr(sw, "launch", lambda *a, **k: pytest.fail("a finished sweep launched jobs"))
    code, out, err = cli("sweep", CONFIG, *GRID, *BASE, "--out", str(folder))
    assert code == 0 and "4 finished, 0 to run" in err
    # and `semstyle sweep --out DIR` continues the sweep recorded there
    code, out, err = cli("sweep", "--out", str(folder))
    assert code == 0 and "4 finished, 0 to run" in err


@pytest.mark.slow
def test_an_interrupted_run_is_resumed(tmp_path):
    """Run 000 was interrupted after its first scale (a real checkpoint in runs/000.partial): the sweep resumes it,
    and its loss log continues the interrupted one."""
    from semstyle.api import run

    folder = tmp_path / "sw"
    base = ["size=48", "scales=[32]", "coarse_steps=2", "steps=2", "precision=fp32"]

    def interrupt(event):
        if event.kind == "scale_start" and event.scale == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(CONFIG, base + ["style_weight=1e-6", f"out_dir={folder / 'runs' / '000'}", "progress=false"], [interrupt])
    assert (folder / "runs" / "000.partial" / "checkpoint.safetensors").is_file()
    before = (folder / "runs" / "000.partial" / "fingerprint.json").read_text()
    path = sw.run_sweep(CONFIG, {}, folder, launcher="basic", overrides=base + ["style_weight=1e-6"])
    [entry] = sw.load_sweep(path)["runs"]
    assert entry["state"] == "done", entry["error"]
    rows = list(csv.DictReader(open(folder / "runs" / "000" / "losses.csv")))
    assert [r["scale"] for r in rows] == ["0", "0", "1", "1"]  # scale 0 from before the interrupt, then scale 1
    assert json.loads((folder / "runs" / "000" / "fingerprint.json").read_text()) == json.loads(before)


# -- the same sweep on every launcher -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance for this module (the ray launcher finds it running); stopped at the end."""
    ray = pytest.importorskip("ray", reason="the ray launcher needs ray (the experiments extra)")
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="needs hydra-ray-launcher (the experiments extra)")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["submitit_local", "ray"])
def test_every_launcher_gives_the_same_losses(launcher, grid, tmp_path, request):
    """Run 002 of the joblib grid again (content_layers=[conv4_2], style_weight=1e-5) through submitit's local
    executor and a local Ray instance: the same seed gives the same losses, to the last digit written, and the same
    pixels."""
    if launcher == "ray":
        request.getfixturevalue("local_ray")
    # --jobs 2, so 1 torch thread as in the grid: another thread count sums in another order, and the losses then
    # differ in their last digits
    folder = sw.run_sweep(
        CONFIG, {"style_weight": ["1e-5"]}, tmp_path / "sw", launcher, BASE + ["content_layers=[conv4_2]"], 2
    )
    assert [r["state"] for r in sw.load_sweep(folder)["runs"]] == ["done"]
    joblib = final_losses(grid[0])
    assert final_losses(folder) == {"000": joblib["002"]}
    assert joblib["000"] != joblib["002"]  # the swept value reached the runs
    output = (folder / "runs" / "000" / "output.png").read_bytes()  # PNG encoding is deterministic
    assert output == (grid[0] / "runs" / "002" / "output.png").read_bytes()


# -- bad input: one line, exit 2, nothing started -------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["stlye_weight=1e-7,1e-6"], "run 000 (stlye_weight=1e-07): unknown config key 'stlye_weight'"),
        (["steps=ten,5"], "run 000 (steps=ten): steps: must be an integer, got 'ten'"),
        (["content_layers=[conv4_2],[conv9_9]"], "run 001 (content_layers=[conv9_9]): unknown VGG-19 layer 'conv9_9'"),
        (["style_weight=1e-7,1e-6", "--launcher", "slurm"], "--launcher: unknown launcher 'slurm'; available: joblib"),
        (["style_weight=interval(1e-7,1e-6)"], "interval() and other search ranges are for `semstyle search`"),
        (["style_weight=[1e-7,"], "override 'style_weight=[1e-7,'"),
        (["out_dir=a,b"], "out_dir: set by the sweep for every run"),
        (["style_weight=1e-7,1e-6", "hydra.launcher.n_jobz=2"], "hydra: Could not override 'hydra.launcher.n_jobz'"),
        (["style_weight=1e-7,1e-6", "--jobs", "0"], "--jobs: must be >= 1, got 0"),
        (["style_weight=1e-7,1e-6", "style_weight=1e-5"], "style_weight is given twice"),
        (
            ["style=nowhere/a.jpg,nowhere/b.jpg"],
            "run 000 (style=nowhere/a.jpg): style image nowhere/a.jpg: file not found",
        ),
    ],
)
def test_bad_input_is_one_line_before_any_run(args, message, tmp_path):
    folder = tmp_path / "sw"
    code, out, err = cli("sweep", CONFIG, *args, "size=48", "--out", str(folder))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("semstyle: error: ") and message in err, err
    assert not folder.exists()  # nothing was written, no run started


def test_a_folder_holding_another_sweep_is_refused(tmp_path):
    folder = tmp_path / "sw"
    folder.mkdir()
    record = {
        "config": str(Path(CONFIG).resolve()),
        "overrides": ["size=48"],
        "params": {"style_weight": ["1e-07"]},
        "runs": [],
    }
    (folder / "sweep.json").write_text(json.dumps(record))
    code, _, err = cli("sweep", CONFIG, "style_weight=1e-7,1e-6", "size=48", "--out", str(folder))
    assert code == 2 and "holds a sweep with other params" in err
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.txt").write_text("mine")
    with pytest.raises(ConfigError, match="exists and is not a sweep folder"):
        sw.run_sweep(CONFIG, {"style_weight": ["1e-7"]}, tmp_path / "plain")


def test_launcher_names_match_the_command_line():
    from semstyle.cli.sweep import LAUNCHER_NAMES

    assert tuple(sw.LAUNCHERS) == LAUNCHER_NAMES


def test_device_and_precision_options_reach_every_run(tmp_path):
    folder = tmp_path / "sw"
    args = ["size=32", "scales=[]", "steps=1", "style_weight=1e-7,1e-6", "--launcher", "basic", "--out", str(folder)]
    code, _, err = cli("sweep", CONFIG, *args, "--device", "cpu", "--precision", "fp32")
    assert code == 0, err
    for run in sw.load_sweep(folder)["runs"]:
        config = (folder / run["folder"] / "config.yaml").read_text()
        assert "precision: fp32" in config and "device: cpu" in config
