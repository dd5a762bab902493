import csv
import subprocess
import sys

import pytest
import torch
from conftest import ASSETS, ROOT
from PIL import Image

from semstyle.api import load_config, run
from semstyle.cli import main
from semstyle.conf import scale_schedule
from semstyle.core.image import load_image
from semstyle.errors import ConfigError
from semstyle.methods import gatys

CONTENT, STYLE = ASSETS / "content/tubingen.jpg", ASSETS / "styles/starry_night.jpg"


def _run_cli(tmp_path, *args):
    return main(
        ["run", str(ROOT / "configs/default.yaml"), f"content={CONTENT}", f"style={STYLE}", "progress=false", *args]
    )


def test_gatys_from_noise_lowers_loss_tenfold(tmp_path):
    out = tmp_path / "run"
    assert _run_cli(tmp_path, "size=96", "scales=[]", "steps=30", "init=noise", f"out_dir={out}") == 0
    rows = list(csv.DictReader(open(out / "losses.csv")))
    assert len(rows) == 30
    first, last = float(rows[0]["total"]), float(rows[-1]["total"])
    assert last < first / 10, (first, last)
    assert Image.open(out / "output.png").size == (96, 72)
    assert {p.name for p in out.iterdir()} >= {"config.yaml", "output.png", "losses.csv", "losses.png"}
    assert not (tmp_path / "run.partial").exists()


def test_multiscale_overrides_frames_and_config_are_written(tmp_path):
    out = tmp_path / "ms"
    args = ["size=80", "scales=[48,64,200]", "coarse_steps=3", "steps=4", "save_every=2", f"out_dir={out}"]
    assert _run_cli(tmp_path, *args) == 0
    cfg = load_config(out / "config.yaml")
    assert cfg.size == 80 and scale_schedule(cfg) == [48, 64, 80]
    rows = list(csv.DictReader(open(out / "losses.csv")))
    assert [int(r["scale"]) for r in rows] == [0] * 3 + [1] * 3 + [2] * 4  # coarse_steps at each scale below size
    assert len(list((out / "frames").glob("*.png"))) == 4  # steps 2 of each scale, and 4 of the last


def test_python_api_is_reproducible_with_a_seed():
    content, style = load_image(CONTENT, 64), load_image(STYLE, 64)
    a = gatys.stylize(content, style, size=64, steps=3, init="noise", seed=3, progress=False, precision="fp32")
    b = gatys.stylize(content, style, size=64, steps=3, init="noise", seed=3, progress=False, precision="fp32")
    assert a.shape == (1, 3, 48, 64) and torch.equal(a, b)


def test_clamp_false_leaves_the_pixels_unconstrained():
    """``clamp: false`` optimises the same function over all pixel values, as neural-style does (the race)."""
    content, style = load_image(CONTENT, 48), load_image(STYLE, 48)
    kwargs = dict(size=48, steps=8, init="noise", seed=0, progress=False, precision="fp32")
    clamped = gatys.stylize(content, style, **kwargs)
    free = gatys.stylize(content, style, clamp=False, **kwargs)
    assert 0 <= clamped.min() and clamped.max() <= 1
    assert free.min() < -0.01 or free.max() > 1.01, (free.min(), free.max())


@pytest.mark.parametrize(
    "override, message",
    [
        ("stle_weight=1", "unknown config key 'stle_weight'"),
        ("content=/no/such/file.jpg", "content image /no/such/file.jpg: file not found"),
        ("style_weight=-1", "style_weight: must be >= 0"),
        ("optimizer=newton", "optimizer: 'newton' is not one of"),
        ("size=0", "size: must be >= 16"),
        ("method=nope", "method: unknown method 'nope'"),
        ("style_layers=[relu9_9]", "unknown VGG-19 layer 'relu9_9'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_leaves_no_folder(tmp_path, capsys, override, message):
    out = tmp_path / "bad"
    assert _run_cli(tmp_path, "size=32", "steps=1", f"out_dir={out}", override) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("semstyle: error:") and message in err and "\n" not in err
    assert not out.exists() and not (tmp_path / "bad.partial").exists()


def test_corrupt_image_is_reported(tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert _run_cli(tmp_path, "size=32", "steps=1", f"out_dir={tmp_path / 'o'}", f"style={bad}") == 2
    assert f"style image {bad}: not a readable image" in capsys.readouterr().err


def test_existing_run_folder_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "done"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert _run_cli(tmp_path, "size=32", "steps=1", f"out_dir={out}") == 2
    assert "already exists" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    out = tmp_path / "resume"
    config = [
        str(ROOT / "configs/default.yaml"),
        [
            f"content={CONTENT}",
            f"style={STYLE}",
            "size=64",
            "scales=[32]",
            "coarse_steps=2",
            "steps=2",
            "progress=false",
            f"out_dir={out}",
        ],
    ]
    steps = []

    def crash_in_scale_1(event):  # a callback on the engine's event stream
        if event.kind == "step":
            steps.append(event.scale)
            if event.scale == 1:
                raise RuntimeError("simulated crash in scale 1")

    with pytest.raises(RuntimeError):
        run(*config, callbacks=[crash_in_scale_1])
    assert (tmp_path / "resume.partial" / "checkpoint.safetensors").exists()
    # the same folder again without resume=true is refused
    assert _run_cli(tmp_path, "size=64", "scales=[32]", "coarse_steps=2", "steps=2", f"out_dir={out}") == 2
    steps.clear()
    run(
        config[0],
        config[1] + ["resume=true"],
        callbacks=[lambda e: steps.append(e.scale) if e.kind == "step" else None],
    )
    rows = list(csv.DictReader(open(out / "losses.csv")))
    assert [int(r["scale"]) for r in rows] == [0, 0, 1, 1]  # scale 0 restored from the checkpoint, not redone
    assert steps == [1, 1]


def test_config_api_rejects_bad_values():
    with pytest.raises(ConfigError, match="scales"):
        load_config({"scales": [8]})
    with pytest.raises(ConfigError, match="precision"):
        load_config(None, ["precision=fp16"])
    with pytest.raises(ConfigError, match="tv_weight: must be a number, got 'lots'"):
        load_config(None, ["tv_weight=lots"])


def test_exponent_without_a_dot_is_a_number():
    # YAML 1.1 (OmegaConf) reads 1e-6 as a string; a weight given that way must still work
    assert load_config(None, ["tv_weight=1e-6"]).tv_weight == 1e-6


def test_console_script_exit_codes(tmp_path):
    exe = [sys.executable, "-m", "semstyle"]
    bad = subprocess.run(exe + ["run", str(ROOT / "configs/default.yaml"), "bogus=1"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert subprocess.run(exe + ["--version"], capture_output=True).returncode == 0
