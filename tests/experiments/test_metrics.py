"""Metrics (semstyle.experiments.metrics): known answers for each metric, and evaluate/collect on real runs."""

from __future__ import annotations

import csv
import json
import math

import kornia
import pytest
import torch

from semstyle.api import run
from semstyle.conf.vocab import METRICS
from semstyle.core.image import load_image, resize, save_image
from semstyle.errors import SemstyleError
from semstyle.experiments import metrics

TINY = ["size=32", "scales=[]", "steps=2", "progress=false", "precision=fp32"]


@pytest.fixture(scope="module")
def pictures(assets_dir):
    return {
        "content": load_image(assets_dir / "content" / "tubingen.jpg", 48),
        "style": load_image(assets_dir / "styles" / "starry_night.jpg", 48),
    }


def test_ssim_and_psnr_of_an_image_with_itself(pictures):
    x = pictures["content"]
    assert metrics.ssim(x, x) == pytest.approx(1.0, abs=1e-6)
    assert metrics.psnr(x, x) == metrics.PSNR_CAP
    noisy = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    noisier = (x + 0.3 * torch.randn_like(x)).clamp(0, 1)
    assert 1.0 > metrics.ssim(noisy, x) > metrics.ssim(noisier, x)
    # PSNR's definition: 10 log10(1 / MSE)
    mse = float(torch.mean((noisy - x) ** 2))
    assert metrics.psnr(noisy, x) == pytest.approx(10 * math.log10(1 / mse), rel=1e-4)


def test_feature_distances_are_zero_on_the_same_image_and_grow_with_change(pictures, assets_dir):
    c, s = pictures["content"], pictures["style"]
    assert metrics.style_distance(s, s) == 0.0
    assert metrics.content_distance(c, c) == 0.0
    assert metrics.perceptual_distance(c, c) == pytest.approx(0.0, abs=1e-9)
    # the Gram is size-normalised: the same painting at another size is far closer than another picture
    s64 = load_image(assets_dir / "styles" / "starry_night.jpg", 64)
    assert metrics.style_distance(s, s64) < 0.5 * metrics.style_distance(c, s)  # 0.26 measured
    blurred = kornia.filters.gaussian_blur2d(c, (7, 7), (2.0, 2.0))
    other = resize(s, tuple(c.shape[-2:]))
    assert 0 < metrics.perceptual_distance(blurred, c) < metrics.perceptual_distance(other, c) <= 2
    assert 0 < metrics.content_distance(blurred, c)


def test_color_distance_ignores_arrangement_and_grows_as_the_hue_shifts(pictures):
    s = pictures["style"]
    shuffled = s.flatten(2)[..., torch.randperm(s.shape[-1] * s.shape[-2])].reshape(s.shape)
    assert metrics.color_distance(shuffled, s) == pytest.approx(0.0, abs=1e-9)
    shifts = [0.0, 0.3, 0.6, 0.9, 1.2, 1.5]  # radians of hue rotation
    d = [metrics.color_distance(kornia.enhance.adjust_hue(s, h), s) for h in shifts]
    assert d[0] == pytest.approx(0.0, abs=1e-3)
    assert all(a < b for a, b in zip(d, d[1:])), d


def test_region_fidelity_known_answer():
    red, blue = torch.tensor([1.0, 0, 0]), torch.tensor([0, 0, 1.0])
    style = torch.zeros(1, 3, 16, 16)
    style[..., :8] = red.view(1, 3, 1, 1)
    style[..., 8:] = blue.view(1, 3, 1, 1)
    smap = torch.zeros(1, 3, 16, 16)
    smap[..., :8] = 1.0  # white = left region, black = right
    # target: the left region is a quarter of the picture
    tmap = torch.zeros(1, 3, 16, 16)
    tmap[..., :4] = 1.0
    painted = torch.zeros(1, 3, 16, 16)
    painted[..., :4] = red.view(1, 3, 1, 1)
    painted[..., 4:] = blue.view(1, 3, 1, 1)
    assert metrics.region_fidelity(painted, tmap, style, smap) == pytest.approx(1.0, abs=1e-6)
    all_red = red.view(1, 3, 1, 1).expand(1, 3, 16, 16)
    # the right region (3/4 of the target) is red instead of blue: gap √2
    expected = 1 - 0.75 * math.sqrt(2) / math.sqrt(3)
    assert metrics.region_fidelity(all_red, tmap, style, smap) == pytest.approx(expected, abs=1e-5)


@pytest.fixture(scope="module")
def gatys_run(tmp_path_factory):
    return run("configs/default.yaml", TINY + [f"out_dir={tmp_path_factory.mktemp('m') / 'gatys'}"])


def test_evaluate_a_run_writes_its_metrics(gatys_run, assets_dir):
    scores = metrics.evaluate(gatys_run, size=48)
    assert set(scores) == {k for k in METRICS if k not in ("region_fidelity", "keypoint_error")}
    stored = json.loads((gatys_run / "metrics.json").read_text())
    assert stored.pop("reference")["size"] == 48 and stored == pytest.approx(scores)
    record = json.loads((gatys_run / "run.json").read_text())
    assert scores["steps"] == record["steps"] == 2
    assert record["precision"] == "fp32" and record["device"] == "cpu" and record["peak_mb"] > 0
    # against the style itself as the content: the output (started from Tübingen) is much farther from it
    against = metrics.evaluate(gatys_run, content=assets_dir / "styles" / "starry_night.jpg", size=48)
    assert against["ssim"] < scores["ssim"] and against["content_distance"] > scores["content_distance"]
    assert against["style_distance"] == pytest.approx(scores["style_distance"])


def test_evaluate_bad_input_is_one_line(tmp_path, gatys_run):
    with pytest.raises(SemstyleError, match="not a run folder"):
        metrics.evaluate(tmp_path)
    with pytest.raises(SemstyleError, match="style .*missing.png does not exist"):
        metrics.evaluate(gatys_run, style=tmp_path / "missing.png", size=48)
    with pytest.raises(SemstyleError, match="neither a run folder nor a sweep folder"):
        metrics.collect([tmp_path])


def test_collect_plain_runs_writes_tables(gatys_run, tmp_path):
    # the last evaluate() above scored against another content: collect scores the run against its own again
    rows = metrics.collect([gatys_run], size=48, out=tmp_path)
    assert [r["run"] for r in rows] == ["gatys"]
    assert json.loads((gatys_run / "metrics.json").read_text())["reference"]["own"]
    table = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert len(table) == 1 and float(table[0]["ssim"]) == pytest.approx(rows[0]["ssim"], rel=1e-6)
    md = (tmp_path / "metrics.md").read_text().splitlines()
    assert md[0].startswith("| run | ssim ↑") and len(md) == 3


def test_keypoint_error_of_a_dst_run(tmp_path):
    save_image(torch.rand(1, 3, 32, 32), tmp_path / "c.png")
    points = ["8, 8", "8, 24", "24, 16", "20, 6"]
    moved = ["10, 9", "9, 26", "27, 17", "22, 8"]
    for name, lines in (("a.txt", points), ("b.txt", moved)):
        (tmp_path / name).write_text("".join(line + "\n" for line in lines))
    out = run(
        {"method": "dst", "base": "gram", "keypoints": "files"},
        TINY
        + [
            "optimizer=adam",
            "lr=0.02",
            f"content_keypoints={tmp_path / 'a.txt'}",
            f"style_keypoints={tmp_path / 'b.txt'}",
            f"content={tmp_path / 'c.png'}",
            f"style={tmp_path / 'c.png'}",
            f"out_dir={tmp_path / 'dst'}",
        ],
    )
    end = json.loads((out / "dst.json").read_text())["alignment_error_px"]["end"]
    scores = metrics.evaluate(out, size=64)
    assert scores["keypoint_error"] == pytest.approx(end * 64 / 32, rel=1e-6)
    assert scores["keypoint_error"] > 0


def test_table_columns_put_swept_values_first_and_metrics_in_order(tmp_path):
    rows = [
        {"run": "000", "style_weights": "[1,0]", "steps": 4, "style_distance_2": 2.0, "ssim": 0.5},
        {"run": "001", "style_weights": "[0,1]", "style_distance_1": 1.5, "style_distance": 1.0, "psnr": 20.0},
    ]
    assert metrics.columns(rows) == [
        "run",
        "style_weights",
        "ssim",
        "psnr",
        "style_distance",
        "style_distance_1",
        "style_distance_2",
        "steps",
    ]
    metrics.write_tables(rows, tmp_path)
    header = (tmp_path / "metrics.md").read_text().splitlines()[0]
    assert header == (
        "| run | style_weights | ssim ↑ | psnr ↑ | style_distance ↓ | style_distance_1 ↓ | style_distance_2 ↓ | steps |"
    )
    assert (tmp_path / "metrics.csv").read_text().splitlines()[1] == '000,"[1,0]",0.5,,,,2.0,4'  # CSV quotes the comma
