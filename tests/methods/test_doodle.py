"""Doodle / CNNMRF methods end to end (tiny sizes), region fidelity on the Renoir set, bad inputs."""

import csv

import numpy as np
import torch
from conftest import ASSETS, ROOT, SHARED, needs_shared
from PIL import Image

from semstyle.api import load_config
from semstyle.cli import main
from semstyle.core import semantic
from semstyle.core.image import load_image
from semstyle.methods import doodle

FAST = ["progress=false", "precision=fp32"]


def _save(arr, path):
    Image.fromarray(np.asarray(arr, np.uint8)).save(path)
    return str(path)


def _toy_set(tmp_path, target_colours=((255, 0, 0), (0, 0, 255))):
    """A 48x48 style with a red-ish top and a blue-ish bottom, its map, and a target map with the regions swapped."""
    rng = np.random.default_rng(0)
    style = np.zeros((48, 48, 3))
    style[:24] = [200, 60, 40]
    style[24:] = [40, 60, 200]
    style += rng.uniform(-40, 40, style.shape)  # texture
    smap = np.zeros((48, 48, 3))
    smap[:24], smap[24:] = (255, 0, 0), (0, 0, 255)
    tmap = np.zeros((40, 48, 3))
    tmap[:, :24], tmap[:, 24:] = target_colours
    return (
        _save(np.clip(style, 0, 255), tmp_path / "style.png"),
        _save(smap, tmp_path / "style_sem.png"),
        _save(tmap, tmp_path / "target_sem.png"),
    )


def test_doodle_cli_writes_output_sheet_and_palette(tmp_path):
    style, smap, tmap = _toy_set(tmp_path)
    out = tmp_path / "run"
    assert (
        main(
            [
                "doodle",
                "--style",
                style,
                "--style-map",
                smap,
                "--content-map",
                tmap,
                "--size",
                "48",
                "--steps",
                "4",
                "--phases",
                "2",
                "--out",
                str(out),
                "--set",
                *FAST,
            ]
        )
        == 0
    )
    files = {p.name for p in out.iterdir()}
    assert {"output.png", "sheet.png", "palette.png", "config.yaml", "losses.csv"} <= files
    assert Image.open(out / "output.png").size == (48, 40)  # the target map's aspect
    assert Image.open(out / "palette.png").size == (2 * 48, 32)
    sheet = Image.open(out / "sheet.png")
    assert sheet.size[1] == 40 and sheet.size[0] > 4 * 40  # style, style map, target map, result
    cfg = load_config(out / "config.yaml")
    assert cfg.method == "doodle" and cfg.phases == 2 and cfg.style_map == smap


def test_toy_doodle_paints_each_region_with_its_style_region(tmp_path):
    style, smap, tmap = _toy_set(tmp_path)
    # 64 px, not the set's 48: at 48 px relu4_1 is 6x6 cells, the matches change wholesale between L-BFGS steps and
    # the loss oscillates, so an unlucky seed can end with the colours swapped; at 64 px seeds 0-5 all paint it
    result = doodle.doodle(style, smap, tmap, size=64, steps=30, phases=1, progress=False, precision="fp32")
    left, right = result[0, :, :, :26].mean((1, 2)), result[0, :, :, 38:].mean((1, 2))
    # from grey noise: the left region turns red, the right blue (the style's top and bottom)
    assert left[0] > left[2] + 0.05 and right[2] > right[0] + 0.1, (left, right)


@needs_shared
def test_region_fidelity_on_the_renoir_doodle():
    """The issue's region-fidelity check, on the Renoir set (regions of distinct colours, >= 0.35 apart).

    For each target region (trees/grass, sky, water and the thin dark tree) the result's mean colour is nearest the
    same style region's, and the area-weighted distance is well below an unguided run's (no map in the matching,
    no per-region colour term). Measured (seeds 0 and 1, bf16 and fp32): own-region distances <= 0.13 against
    >= 0.24 to the next region; guided/unguided weighted distance 0.07-0.25.
    """
    renoir = SHARED / "doodle/renoir"
    style = load_image(renoir / "style.jpg")
    s_masks, t_masks, _ = semantic.semantic_masks(
        semantic.load_map(renoir / "style_sem.png"), semantic.load_map(renoir / "target_sem.png")
    )
    options = dict(size=96, steps=40, phases=2, progress=False, seed=0)
    maps = (renoir / "style.jpg", renoir / "style_sem.png", renoir / "target_sem.png")
    reference = semantic.region_means(style, s_masks)
    area = t_masks.mean((0, 2, 3))
    dist = {}
    for guided in (True, False):
        weights = {} if guided else {"semantic.weight": 0.0, "semantic.color_weight": 0.0}
        result = doodle.doodle(*maps, **options, **weights)
        dist[guided] = torch.cdist(semantic.region_means(result, t_masks), reference)
    assert len(area) == 4
    assert torch.equal(dist[True].argmin(1), torch.arange(4)), dist[True]
    guided, unguided = (area * dist[True].diagonal()).sum(), (area * dist[False].diagonal()).sum()
    assert guided < 0.5 * unguided, (guided, unguided)


def test_region_colors_init_fills_each_target_region_with_its_style_colour():
    style = torch.zeros(1, 3, 8, 8)
    style[..., :4, :], style[..., 4:, :] = torch.tensor([0.9, 0.1, 0.1])[:, None, None], 0.2
    s_masks = torch.zeros(1, 2, 8, 8)
    s_masks[:, 0, :4], s_masks[:, 1, 4:] = 1, 1
    t_masks = torch.zeros(1, 2, 6, 10)
    t_masks[:, 0, :, 5:], t_masks[:, 1, :, :5] = 1, 1
    start = doodle.region_colors(style, s_masks, t_masks, seed=0, noise=0.1)
    assert start.shape == (1, 3, 6, 10)
    assert torch.allclose(start[0, :, :, 5:].mean((1, 2)), torch.tensor([0.9, 0.1, 0.1]), atol=0.03)
    assert torch.allclose(start[0, :, :, :5].mean((1, 2)), torch.tensor([0.2, 0.2, 0.2]), atol=0.03)
    assert 0.02 < start[0, 0, :, 5:].std() < 0.05  # the noise the patches need, not a flat fill


def test_gram_masked_and_auto_maps_run(tmp_path):
    style, smap, tmap = _toy_set(tmp_path)
    result = doodle.doodle(
        style, smap, tmap, size=40, steps=3, phases=1, progress=False, precision="fp32", **{"style_loss": "gram_masked"}
    )
    assert result.shape == (1, 3, 33, 40) and 0 <= result.min() and result.max() <= 1
    content = load_image(ASSETS / "content/tubingen.jpg", 48)
    result = doodle.doodle(
        ASSETS / "styles/starry_night.jpg",
        content=content,
        size=48,
        steps=2,
        phases=1,
        progress=False,
        precision="fp32",
        init="content",
        **{"semantic.auto_maps": 3},
    )
    assert result.shape == (1, 3, 36, 48)


def test_cnnmrf_lowers_the_mrf_loss_and_keeps_the_content(tmp_path):
    out = tmp_path / "cnnmrf"
    assert (
        main(
            [
                "doodle",
                "--cnnmrf",
                "--content",
                str(ASSETS / "content/astronaut.jpg"),
                "--style",
                str(ASSETS / "styles/monalisa.jpg"),
                "--size",
                "48",
                "--steps",
                "10",
                "--phases",
                "1",
                "--out",
                str(out),
                "--set",
                *FAST,
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(open(out / "losses.csv")))
    assert float(rows[-1]["style"]) < 0.7 * float(rows[0]["style"])
    cfg = load_config(out / "config.yaml")
    assert cfg.method == "cnnmrf" and cfg.mrf.stride == 2 and cfg.semantic.weight == 0
    result = load_image(out / "output.png")
    content = load_image(ASSETS / "content/astronaut.jpg", tuple(result.shape[-2:]))
    assert 0.01 < (result - content).abs().mean() < 0.25  # changed, but the portrait is still there


def test_configs_resolve():
    for path in (ROOT / "configs/doodle").glob("*.yaml"):
        cfg = load_config(path)
        assert cfg.method in ("doodle", "cnnmrf"), path


def _error(capsys, *args):
    code = main(["doodle", *args, "--size", "32", "--steps", "1", "--phases", "1", "--set", *FAST])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err, err
    return err


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    style, smap, tmap = _toy_set(tmp_path)
    err = _error(capsys, "--style", style, "--style-map", str(tmp_path / "nope.png"), "--content-map", tmap)
    assert err.startswith("semstyle: error: style map") and "nope.png: file not found" in err
    err = _error(capsys, "--style", style, "--content-map", tmap)
    assert "style_map: required" in err
    small = _save(np.full((20, 20, 3), 255), tmp_path / "small_sem.png")
    err = _error(capsys, "--style", style, "--style-map", small, "--content-map", tmap)
    assert "is 20x20 but the style image is 48x48" in err and "--resize-maps" in err
    (tmp_path / "odd").mkdir()
    _, _, odd = _toy_set(tmp_path / "odd", target_colours=((255, 0, 0), (0, 255, 0)))
    err = _error(capsys, "--style", style, "--style-map", smap, "--content-map", odd)
    assert err.startswith(f"semstyle: error: target map {odd}: colour (0, 255, 0)"), err  # names the file
    assert "x=24..47" in err and "semantic.unmatched=ignore" in err
    Image.new("L", (48, 48), 200).save(tmp_path / "grey.png")
    assert "greyscale" in _error(
        capsys, "--style", style, "--style-map", str(tmp_path / "grey.png"), "--content-map", tmap
    )
    rgba = np.zeros((40, 48, 4), np.uint8)
    rgba[..., 3] = 100
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert "transparent" in _error(
        capsys, "--style", style, "--style-map", smap, "--content-map", str(tmp_path / "rgba.png")
    )
    assert "auto_maps: needs content" in _error(capsys, "--style", style, "--auto-maps", "3")
    assert "init: regions needs maps" in _error(capsys, "--style", style, "--content", style, "--set", "init=regions")
    assert "mrf.match_channels" in _error(
        capsys, "--style", style, "--style-map", smap, "--content-map", tmap, "--set", "mrf.match_channels=-4"
    )
    assert "mrf.search" in _error(
        capsys, "--style", style, "--style-map", smap, "--content-map", tmap, "--set", "mrf.search=fast"
    )
    assert "mrf.search_every" in _error(
        capsys, "--style", style, "--style-map", smap, "--content-map", tmap, "--set", "mrf.search_every=0"
    )


def test_cnnmrf_style_copies_are_rotated_and_scaled_with_valid_areas():
    style = torch.rand(1, 3, 40, 60)
    masks = torch.zeros(1, 2, 40, 60)
    masks[:, 0, :, :30], masks[:, 1, :, 30:] = 1, 1
    cfg = load_config({"method": "cnnmrf", "mrf": {"rotations": 1, "scalings": 1}})
    copies = doodle.style_copies(style, masks, cfg.mrf)
    assert len(copies) == 9 and copies[0][0] is style and copies[0][2] is None
    for image, m, valid in copies[1:]:
        assert image.shape[1] == 3 and m.shape[1] == 2 and valid.shape[1] == 1
        assert image.shape[-2:] == m.shape[-2:] == valid.shape[-2:]
    sizes = sorted({c[0].shape[-1] for c in copies})
    assert sizes == [57, 60, 63]  # 60 / 1.05, 60, 60 * 1.05
    rotated = copies[1][2]  # -7.5°, scale 1/1.05: empty corners
    assert rotated[0, 0, 0, 0] < 0.5 and rotated[0, 0, 19, 28] > 0.99


def test_doodle_with_content_and_resized_target_map(tmp_path, capsys):
    style, smap, _ = _toy_set(tmp_path)
    content = _save(np.random.default_rng(1).uniform(0, 255, (40, 48, 3)), tmp_path / "content.png")
    tmap = np.zeros((20, 24, 3))
    tmap[:, :12], tmap[:, 12:] = (255, 0, 0), (0, 0, 255)
    tmap = _save(tmap, tmp_path / "content_sem.png")
    args = ["--style", style, "--style-map", smap, "--content", content, "--content-map", tmap]
    err = _error(capsys, *args)
    assert "target map" in err and "is 24x20 but the content image is 48x40" in err and "--resize-maps" in err
    out = tmp_path / "with_content"
    assert (
        main(
            [
                "doodle",
                *args,
                "--resize-maps",
                "--size",
                "40",
                "--steps",
                "3",
                "--phases",
                "1",
                "--out",
                str(out),
                "--set",
                *FAST,
            ]
        )
        == 0
    )
    header = open(out / "losses.csv").readline().strip().split(",")
    assert {"content", "style", "tv"} <= set(header)
    assert Image.open(out / "sheet.png").size[0] > 5 * 33  # style, two maps, content, result
