"""Inference with the shipped models: images, folders, a video written here; bad inputs end in one line, exit 2
(issue 19, tests: inference and bad input)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import ASSETS
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from semstyle.cli import main
from semstyle.conf.checks import model_file
from semstyle.conf.feedforward import FeedForwardConfig
from semstyle.conf.vocab import SHIPPED_MODELS
from semstyle.core.encoder import vgg19_encoder
from semstyle.core.image import load_image
from semstyle.feedforward.stylize import Stylizer
from semstyle.feedforward.train import HierarchicalLoss
from semstyle.losses.gram import gram_loss, gram_matrix

LAYERS = ["conv1_1", "conv2_1", "conv3_1", "conv4_1"]


@pytest.fixture(scope="module")
def encoder():
    return vgg19_encoder("avg", "fp32", "cpu")


def _style_distance(encoder, image, style) -> float:
    a, b = encoder(image, LAYERS), encoder(style, LAYERS)
    return sum(float(gram_loss(gram_matrix(a[k]), gram_matrix(b[k]))) for k in LAYERS)


@pytest.mark.parametrize("name", list(SHIPPED_MODELS))
def test_shipped_model_moves_gram_statistics_towards_the_style(name, encoder):
    model = Stylizer(name, device="cpu", precision="fp32")
    style = load_image(ASSETS / "styles" / model.meta["config"]["style"], 128)
    photo = load_image(ASSETS / "content/astronaut.jpg", 128)  # not in the training set
    out = model(photo)
    assert out.shape == photo.shape
    before, after = _style_distance(encoder, photo, style), _style_distance(encoder, out, style)
    assert after < 0.5 * before, (before, after)


def test_the_stage_trained_at_the_asked_size_answers(encoder):
    """At 128 px the shipped CPU Multimodal model (trained at 128 / 256 / 512 px) answers from its style subnet,
    trained at 128 px, and that output scores far below the refine stage's run at 128 px (stages at 32 / 64 / 128;
    544 against 1778 on this photo when measured)."""
    model = Stylizer("multimodal", device="cpu", precision="fp32")
    assert model.net.scales == (128, 256, 512)
    style = load_image(ASSETS / "styles" / model.meta["config"]["style"], 128)
    photo = load_image(ASSETS / "content/astronaut.jpg", 128)
    chosen, stages = model(photo), model(photo, all_scales=True)
    assert chosen.shape == photo.shape and stages[-1].shape == photo.shape
    objective = HierarchicalLoss(FeedForwardConfig(), encoder, style, [128])  # the training objective, one output
    assert objective([chosen], photo)[0] < 0.5 * objective([stages[-1]], photo)[0]


def _write_video(path, frames=3, size=(48, 64)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (size[1], size[0]))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    writer.release()


def test_cli_stylizes_a_folder_and_a_video(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        img = (torch.rand(40, 56, 3).numpy() * 255).astype(np.uint8)
        cv2.imwrite(str(folder / name), img)
    _write_video(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    code = main(["stylize", "--model", "johnson", str(folder), str(tmp_path / "clip.mp4"), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "clip.mp4"]
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    frames = []
    ok, frame = cap.read()
    while ok:
        frames.append(frame)
        ok, frame = cap.read()
    assert len(frames) == 3 and frames[0].shape == (48, 64, 3)
    # --size: larger than the input on request
    code = main(["stylize", "--model", "johnson", str(folder / "a.png"), "--size", "112", "--out", str(out)])
    assert code == 0 and load_image(out / "a-1.png").shape[-2:] == (80, 112)


def _missing_tensor_model(tmp_path):
    path = model_file("johnson")
    tensors = load_file(str(path))
    del tensors[sorted(tensors)[0]]
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    bad = tmp_path / "missing.safetensors"
    save_file(tensors, str(bad), metadata=metadata)
    return bad


@pytest.mark.parametrize("case", ["not_safetensors", "missing_tensors", "corrupt_video", "empty_folder", "no_model"])
def test_bad_inputs_give_one_line_and_exit_2(case, tmp_path, capsys):
    photo = str(ASSETS / "content/astronaut.jpg")
    if case == "not_safetensors":
        model = tmp_path / "model.safetensors"
        model.write_bytes(b"\x80\x04 this is a pickle, not safetensors" * 3)
        args, expect = ["--model", str(model), photo], "not a readable safetensors file"
    elif case == "missing_tensors":
        args, expect = ["--model", str(_missing_tensor_model(tmp_path)), photo], "1 missing tensors"
    elif case == "corrupt_video":
        video = tmp_path / "broken.mp4"
        video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
        args, expect = ["--model", "johnson", str(video)], "cannot be read"
    elif case == "empty_folder":
        (tmp_path / "empty").mkdir()
        args, expect = ["--model", "johnson", str(tmp_path / "empty")], "has no images or videos"
    else:
        args, expect = ["--model", str(tmp_path / "nothing.safetensors"), photo], "not found"
    code = main(["stylize", *args, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and expect in err, err
    assert not (tmp_path / "out").exists()


def test_train_bad_data_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["train", f"data=[{tmp_path / 'empty'}]", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "has no images" in err, err
