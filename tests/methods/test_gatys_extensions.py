"""Gatys extensions: multi-style blending, per-style layers, pooling choice, reconstructions, feature view, the
configs in configs/gatys/, and a one-line error (exit code 2) for every bad value of the new options."""

from pathlib import Path

import pytest
import torch
from conftest import ASSETS, ROOT
from PIL import Image

from semstyle.api import load_config
from semstyle.cli import main
from semstyle.core.encoder import vgg19_encoder
from semstyle.core.image import load_image
from semstyle.losses import GramLoss
from semstyle.methods import gatys, reconstruct
from semstyle.viz.features import feature_maps
from semstyle.viz.layout import grid

CONTENT = ASSETS / "content/tubingen.jpg"
STARRY, MONALISA = ASSETS / "styles/starry_night.jpg", ASSETS / "styles/monalisa.jpg"  # landscape vs portrait
FAST = dict(progress=False, precision="bf16")


def _gram_distance(image, style):
    term = GramLoss()
    encoder = vgg19_encoder("avg", "bf16")
    with torch.no_grad():
        term.set_target(encoder(style, term.layers))
        return float(term(encoder(image, term.layers)))


def test_style_weights_pick_the_style_the_result_is_closest_to():
    content, s1, s2 = load_image(CONTENT, 64), load_image(STARRY, 64), load_image(MONALISA, 80)
    common = dict(size=64, steps=12, init="noise", **FAST)
    only_1 = gatys.stylize(content, [s1, s2], style_weights=[1, 0], **common)
    only_2 = gatys.stylize(content, [s1, s2], style_weights=[0, 1], **common)
    d1 = (_gram_distance(only_1, s1), _gram_distance(only_2, s1))
    d2 = (_gram_distance(only_1, s2), _gram_distance(only_2, s2))
    assert d1[0] < d1[1] and d2[1] < d2[0], (d1, d2)


def test_blended_loss_is_the_weighted_sum_of_per_style_gram_losses():
    cfg = load_config(
        {
            "style": ["a.jpg", "b.jpg"],
            "style_weights": [3, 1],
            "style_layers": [["conv1_1", "conv3_1"], ["conv3_1", "relu4_1"]],
            "style_layer_weights": [[1.0, 2.0], None],
        }
    )
    plan = gatys.style_plan(cfg, 2)
    assert [w for w, _, _ in plan] == [0.75, 0.25]
    blend = gatys.BlendedStyleLoss(plan)
    assert blend.layers == ("conv1_1", "conv3_1", "relu4_1")  # the union, in network order
    shapes = {"conv1_1": (1, 64, 12, 10), "conv3_1": (1, 256, 3, 3), "relu4_1": (1, 512, 2, 2)}
    targets = [{k: torch.rand(s) for k, s in shapes.items()} for _ in range(2)]
    for term, feats in zip(blend.styles, targets):
        term.set_target(feats)
    x = {k: torch.rand(s) for k, s in shapes.items()}
    ref_1, ref_2 = GramLoss(["conv1_1", "conv3_1"], [1.0, 2.0]), GramLoss(["conv3_1", "relu4_1"])
    ref_1.set_target(targets[0])
    ref_2.set_target(targets[1])
    assert torch.isclose(blend(x), 0.75 * ref_1(x) + 0.25 * ref_2(x))


def test_unnormalised_weights_are_used_as_given():
    cfg = load_config({"style": ["a.jpg", "b.jpg"], "style_weights": [3, 1], "style_weights_normalize": False})
    assert [w for w, _, _ in gatys.style_plan(cfg, 2)] == [3.0, 1.0]


def test_pooling_switch_changes_the_result():
    content, style = load_image(CONTENT, 48), load_image(STARRY, 48)
    assert load_config({}).pooling == "avg"  # Gatys et al. 2016 recommend average pooling for synthesis
    avg = gatys.stylize(content, style, size=48, steps=3, **FAST)
    mx = gatys.stylize(content, style, size=48, steps=3, pooling="max", **FAST)
    assert (avg - mx).abs().max() > 1e-3


def test_content_reconstruction_from_conv1_1_is_far_closer_than_from_conv5_1():
    image = load_image(CONTENT, 64)
    opts = dict(size=64, steps=25, **FAST)
    low = reconstruct.reconstruct_content(image, "conv1_1", **opts)
    high = reconstruct.reconstruct_content(image, "conv5_1", **opts)
    mse_low, mse_high = float((low - image).pow(2).mean()), float((high - image).pow(2).mean())
    assert mse_low < mse_high / 4, (mse_low, mse_high)


def test_reconstruct_style_config_runs_growing_subsets(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the configs name the bundled assets relative to the repository
    out = tmp_path / "rs"
    assert (
        main(
            [
                "run",
                str(ROOT / "configs/gatys/reconstruct_style.yaml"),
                "size=40",
                "steps=3",
                "layers=[conv1_1,conv2_1,conv3_1]",
                "progress=false",
                "precision=bf16",
                f"out_dir={out}",
            ]
        )
        == 0
    )
    names = {p.name for p in out.iterdir()}
    assert {
        "output.png",
        "config.yaml",
        "losses.csv",
        "style_conv1_1.png",
        "style_conv1_1-conv2_1.png",
        "style_conv1_1-conv3_1.png",
    } <= names
    assert Image.open(out / "style_conv1_1.png").size == (40, 25)
    assert Image.open(out / "output.png").width > 4 * 40  # input + three reconstructions side by side


def test_reconstruct_and_features_commands(tmp_path, capsys):
    out = tmp_path / "rc"
    assert (
        main(
            [
                "reconstruct",
                "content",
                str(CONTENT),
                "--layer",
                "conv4_2",
                "steps=2",  # an override right after the layers (argparse's nargs="+" takes it too)
                "--size",
                "32",
                "--precision",
                "bf16",
                "--out",
                str(out),
                "progress=false",
            ]
        )
        == 0
    )
    config = load_config(out / "config.yaml")
    assert (out / "content_conv4_2.png").exists() and config.target == "content"
    assert list(config.layers) == ["conv4_2"] and config.steps == 2 and config.size == 32
    folder = tmp_path / "features"
    assert (
        main(
            [
                "features",
                str(CONTENT),
                "--layers",
                "conv1_1",
                "conv3_1",
                "--channels",
                "4",
                "--size",
                "64",
                "--tile",
                "16",
                "--out",
                str(folder),
            ]
        )
        == 0
    )
    fig = folder / "features.png"
    assert Image.open(fig).mode == "RGB" and f"result: {fig}" in capsys.readouterr().out
    assert main(["features", str(CONTENT), "--out", str(folder)]) == 2  # a run folder is never overwritten


def test_feature_maps_and_grid():
    image = load_image(CONTENT, 64)
    maps = feature_maps(image, "conv3_1", channels=5, precision="bf16")
    assert maps.shape == (5, 12, 16) and maps.amin() == 0 and float(maps.amax()) == pytest.approx(1.0)
    tiles = torch.arange(5.0)[:, None, None, None].expand(5, 3, 2, 3)
    g = grid(tiles, ncols=2, pad=1, background=-1.0)
    assert g.shape == (1, 3, 3 * 2 + 2, 2 * 3 + 1)
    assert g[0, 0, 3, 4] == 3 and g[0, 0, 6, 0] == 4 and g[0, 0, 6, 4] == -1 and g[0, 0, 2, 0] == -1


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "configs/gatys").glob("*.yaml")))
def test_every_gatys_config_runs(tmp_path, monkeypatch, name):
    monkeypatch.chdir(ROOT)
    out = tmp_path / name
    small = ["size=64", "scales=[]", "steps=2"] + (["layers=[conv1_1,conv3_1]"] if "reconstruct" in name else [])
    assert (
        main(
            [
                "run",
                str(ROOT / f"configs/gatys/{name}.yaml"),
                *small,
                "progress=false",
                "precision=bf16",
                f"out_dir={out}",
            ]
        )
        == 0
    )
    assert Image.open(out / "output.png").height >= 48


BAD_GATYS = [
    ("style=[]", "style: the list of style images is empty"),
    ("style_weights=[1,-1]", "style_weights: must be >= 0, got -1"),
    ("style_weights=[1]", "style_weights: 1 weights given for 2 style images"),
    ("style_weights=[0,0]", "style_weights: must not all be 0"),
    ("style_weights=oops", "style_weights: must be a list of numbers"),
    ("style_weights_normalize=maybe", "style_weights_normalize: must be true or false"),
    ("clamp=maybe", "clamp: must be true or false"),
    ("style_layers=[[conv1_1]]", "style_layers: 1 layer lists given for 2 style images"),
    ("style_layers=[[conv1_1],[]]", "style_layers: a style image's layer list is empty"),
    ("style_layers=[conv1_1,[conv2_1]]", "style_layers: give one list of layers, or one list per style image"),
    ("style_layers=[[conv1_1],[conv9_1]]", "unknown VGG-19 layer 'conv9_1'"),
    ("style_layer_weights=[1,2]", "style_layer_weights: 2 weights given for the 5 layers"),
    ("style_layer_weights=[1,1,1,1,-1]", "style_layer_weights: must be >= 0"),
    ("color.preserve=grey", "color.preserve: 'grey' is not one of none, luminance, histogram"),
    ("color.histogram_method=svd", "color.histogram_method: 'svd' is not one of sqrt, cholesky"),
    ("color.colour=1", "unknown config key 'color.colour'"),
    ("laplacian.weight=-1", "laplacian.weight: must be >= 0, got -1"),
    ("laplacian.pool_sizes=[]", "laplacian.pool_sizes: give at least one pool size"),
    ("laplacian.pool_sizes=[0,4]", "laplacian.pool_sizes: each must be an integer >= 1, got 0"),
    ("laplacian.pool_weights=[1]", "laplacian.pool_weights: 1 weights given for 2 pool sizes"),
    ("laplacian.pool_weights=[1,-2]", "laplacian.pool_weights: must be >= 0, got -2"),
    ("pooling=min", "pooling: 'min' is not one of max, avg"),
]


@pytest.mark.parametrize("override, message", BAD_GATYS)
def test_bad_gatys_option_is_one_line_exit_2(tmp_path, capsys, override, message):
    out = tmp_path / "bad"
    code = main(
        [
            "run",
            str(ROOT / "configs/gatys/multi_style.yaml"),
            "size=32",
            "steps=1",
            f"out_dir={out}",
            "progress=false",
            override,
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("semstyle: error:") and message in err and "\n" not in err, err
    assert not out.exists() and not (tmp_path / "bad.partial").exists()


BAD_RECONSTRUCT = [
    (
        ["run", "configs/gatys/reconstruct_content.yaml", "target=texture"],
        "target: 'texture' is not one of content, style",
    ),
    (["run", "configs/gatys/reconstruct_content.yaml", "layers=[]"], "layers: name at least one layer"),
    (["run", "configs/gatys/reconstruct_content.yaml", "layers=conv1_1"], "layers: must be a list"),
    (["run", "configs/gatys/reconstruct_style.yaml", "growing=sometimes"], "growing: must be true or false"),
    (["run", "configs/gatys/reconstruct_style.yaml", "init=style"], "init: style is not available"),
    (["run", "configs/gatys/reconstruct_style.yaml", "style_weight=-1"], "style_weight: must be >= 0"),
    (
        ["run", "configs/gatys/reconstruct_style.yaml", "style_weight=0"],
        "style_weight: must be > 0 for a style reconstruction",
    ),
    (["run", "configs/gatys/reconstruct_style.yaml", "pooling=median"], "pooling: 'median' is not one of max, avg"),
    (["reconstruct", "texture", str(CONTENT)], "argument target: invalid choice: 'texture'"),
    (["reconstruct", "content", "/no/such.jpg"], "image /no/such.jpg: file not found"),
    (["reconstruct", "content", str(CONTENT), "--layers", "conv6_1"], "unknown VGG-19 layer 'conv6_1'"),
    (["reconstruct", "style", str(CONTENT), "--set", "oops"], "override 'oops': expected key=value"),
    (["features", "/no/such.jpg"], "image /no/such.jpg: file not found"),
    (["features", str(CONTENT), "--layers", "pool9"], "unknown VGG-19 layer 'pool9'"),
    (["features", str(CONTENT), "--channels", "0", "--size", "32"], "channels: must be an integer >= 1"),
    (["features", str(CONTENT), "--cmap", "nope", "--size", "32"], "cmap: 'nope' is not a matplotlib colour map"),
    (["features", str(CONTENT), "--tile", "2", "--size", "32"], "tile: must be an integer in [8, 1024]"),
]


@pytest.mark.parametrize("argv, message", BAD_RECONSTRUCT)
def test_bad_reconstruct_or_features_input_is_one_line_exit_2(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "bad"
    argv = argv + {"run": [f"out_dir={out}", "size=32", "steps=1"], "reconstruct": ["--out", str(out)]}.get(argv[0], [])
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("semstyle: error:") and message in err and "\n" not in err, err
    assert not out.exists() and not Path(str(out) + ".partial").exists()
