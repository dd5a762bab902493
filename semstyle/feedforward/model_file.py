"""Model files: the network's weights in safetensors, with everything ``stylize`` needs in the metadata.

Metadata keys: ``format`` (``semstyle-feedforward``), ``config`` (JSON: ``arch``, ``scales``, ``width``, the
training style image's name, the loss weights and layers), ``training`` (JSON: steps, seconds, data, command),
``dtype`` of the stored weights. Files are read with safetensors only, never with pickle.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..conf.checks import model_file
from ..core.image import atomic_write
from ..errors import ConfigError
from .networks import FeedForward

FORMAT = "semstyle-feedforward"
ARCH_KEYS = ("arch", "scales", "width")


def save_model(net: FeedForward, path, config: dict, training: dict | None = None, dtype=torch.float16) -> Path:
    """Write ``net``'s weights as ``dtype`` (fp16 halves the file; inference runs in fp32 or bf16 anyway) with
    ``config`` (must hold :data:`ARCH_KEYS`) and ``training`` as JSON metadata; atomic."""
    config = {**config, "arch": net.arch, "scales": list(net.scales), "width": net.width}
    tensors = {k: v.detach().to("cpu", dtype).contiguous().clone() for k, v in net.state_dict().items()}
    meta = {
        "format": FORMAT,
        "config": json.dumps(config),
        "training": json.dumps(training or {}),
        "dtype": str(dtype).removeprefix("torch."),
    }
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta), suffix=".safetensors")


def read_model(path) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and parsed metadata (``config``, ``training``) of a model file, or a one-line :class:`ConfigError`."""
    path = model_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ConfigError(f"model {path}: not a readable safetensors file ({' '.join(str(e).split())})") from None
    if meta.get("format") != FORMAT:
        raise ConfigError(f"model {path}: not a semstyle feed-forward model (no '{FORMAT}' format in its metadata)")
    try:
        config = json.loads(meta["config"])
        training = json.loads(meta.get("training", "{}"))
        missing = [k for k in ARCH_KEYS if k not in config]
        if missing:
            raise ConfigError(f"model {path}: its config lacks {', '.join(missing)}")
    except (KeyError, ValueError):
        raise ConfigError(f"model {path}: its config metadata is missing or not JSON") from None
    return tensors, {"config": config, "training": training}


def load_model(path, device="cpu") -> tuple[FeedForward, dict]:
    """The network of a model file, in fp32 and eval mode, and its metadata (``config``, ``training``)."""
    tensors, meta = read_model(path)
    config = meta["config"]
    try:
        net = FeedForward(config["arch"], config["scales"], config["width"])
    except (ValueError, TypeError) as e:
        raise ConfigError(f"model {path}: bad architecture in its config ({e})") from None
    expected = net.state_dict()
    missing = [k for k in expected if k not in tensors]
    extra = [k for k in tensors if k not in expected]
    if missing or extra:
        what = f"{len(missing)} missing tensors (e.g. {missing[0]})" if missing else ""
        what += ("; " if missing and extra else "") + (f"{len(extra)} unexpected (e.g. {extra[0]})" if extra else "")
        raise ConfigError(f"model {path}: does not match its {config['arch']} architecture: {what}")
    bad = [k for k, v in expected.items() if tuple(tensors[k].shape) != tuple(v.shape)]
    if bad:
        raise ConfigError(
            f"model {path}: tensor {bad[0]} has shape {tuple(tensors[bad[0]].shape)}, "
            f"expected {tuple(expected[bad[0]].shape)}"
        )
    net.load_state_dict({k: v.float() for k, v in tensors.items()})
    return net.to(device).eval(), meta
