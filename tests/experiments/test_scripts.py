"""The literature's experiments (scripts/): one script end to end at 32 px, in the test's process (Hydra's basic
launcher), and the common options every script shares."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"


def _script(name: str):
    sys.path.insert(0, str(SCRIPTS))  # the scripts import their shared _common module from their folder
    try:
        spec = importlib.util.spec_from_file_location(f"scripts_{name}", SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPTS))
    return module


def test_every_script_answers_help(capsys):
    names = sorted(p.stem for p in SCRIPTS.glob("*.py") if not p.stem.startswith("_") and p.stem != "config_reference")
    assert len(names) >= 9
    for name in names:
        with pytest.raises(SystemExit) as end:
            _script(name).main(["--help"])
        assert end.value.code == 0
        out = capsys.readouterr().out
        assert "--size" in out and ("--launcher" in out or name in NO_SWEEP), name


NO_SWEEP = ("multimodal_scales",)  # a feed-forward pass: nothing to launch


def test_multimodal_scales_script_draws_the_three_scales(tmp_path, capsys):
    out = tmp_path / "mm"
    assert _script("multimodal_scales").main(["--size", "96", "--out", str(out)]) == 0
    figure = Image.open(out / "scales.png")
    # input, 3 scales and Johnson, 256 px high each (square photo), then the two crops (at most 96 px here), captioned
    assert figure.height > 256 and 5 * 256 < figure.width <= 5 * 256 + 2 * 96 + 7 * 8
    assert f"result: {out / 'scales.png'}" in capsys.readouterr().out


@pytest.mark.slow
def test_total_variation_script_writes_its_sheet_and_table(tmp_path, capsys):
    out = tmp_path / "tv"
    args = ["--size", "32", "--steps", "2", "--launcher", "basic", "--cell", "32", "--eval-size", "32"]
    assert _script("total_variation").main(args + ["--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["tv_weight"] for r in rows] == ["0", "1e4", "1e5"]
    assert all(float(r["ssim"]) > 0 for r in rows)
    for name in ("sheet.png", "metrics.md", "report.html", "losses.png"):
        assert (out / name).is_file(), name
    assert f"contact sheet: {out / 'sheet.png'}" in capsys.readouterr().out
    # a second call finds every run finished and runs none
    assert _script("total_variation").main(args + ["--out", str(out)]) == 0
    assert len(list((out / "runs").iterdir())) == 3


def test_a_script_needing_shared_data_skips_with_a_reason(tmp_path, monkeypatch, capsys):
    common = _script("_common")
    monkeypatch.setattr(common, "SHARED", tmp_path / "nowhere")
    with pytest.raises(SystemExit) as end:
        common.needs_shared("doodle/monet/style.jpg")
    assert end.value.code == 0
    assert "skipped: needs" in capsys.readouterr().err
