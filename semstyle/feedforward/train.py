"""Training a feed-forward network on the engine's model-optimisation path (:class:`semstyle.engine.loop.Problem`
over the network's parameters, minimised by :func:`~semstyle.engine.loop.run_steps` with Adam).

The hierarchical loss of Wang et al. 2017 (eq. 4): each output ŷ_k (long side ``scales[k]``) gets
``L_S^k = α·L_content(ŷ_k, y_c^k) + β·L_style(ŷ_k, y_s^k)`` against the content crop and the style image resized
to that output's size, and ``L_H = Σ_k λ_k L_S^k``. One backward pass of ``L_H`` trains each subnet Θ_k on the
losses of its own output and the later ones (i ≥ k), because only those depend on Θ_k. The content loss is
:func:`semstyle.losses.content.content_loss` (Gatys eq. 1, as a mean), the style loss
:func:`semstyle.losses.gram.gram_loss` on :func:`~semstyle.losses.gram.gram_matrix` (Gatys eq. 4, w_l = 1/L), on
the project's Caffe VGG-19. The Johnson baseline is the one-scale case.

The run folder (:class:`semstyle.engine.runs.RunDir`) gets ``config.yaml``, ``losses.csv``/``losses.png``,
``samples/step_NNNNNN.png`` (the validation photos and each scale's output) and the model file; checkpoints hold
the weights and Adam's state, so ``resume=true`` continues the step count and the data order exactly.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ..conf import to_yaml
from ..conf.checks import list_images
from ..conf.feedforward import check_train_files, train_scales
from ..core.encoder import config_precision, resolve_device, vgg19_encoder
from ..core.image import load_image, resize
from ..engine.callbacks import ProgressBar
from ..engine.events import Event
from ..engine.fingerprint import fingerprint
from ..engine.loop import Problem, make_optimizer, run_steps
from ..engine.runs import RunDir
from ..errors import ConfigError
from ..losses.content import content_loss
from ..losses.gram import gram_loss, gram_matrix
from ..losses.tv import tv_loss
from ..viz.layout import side_by_side
from .data import CropDataset, default_images
from .model_file import load_model, save_model
from .networks import FeedForward

# keys that change how a training run reports, not what it computes: a resume may change them
REPORTING_KEYS = ("checkpoint_every", "sample_every", "validation", "model_name", "steps")


class HierarchicalLoss:
    """``L_H = Σ_k λ_k (α L_content^k + β L_style^k) + γ TV`` of a network's outputs (see the module docstring).

    Style Gram targets are computed once per scale (batch 1; :func:`gram_loss` broadcasts them over the batch).
    """

    def __init__(self, cfg, encoder, style: torch.Tensor, scales: list[int]):
        self.cfg = cfg
        self.encoder = encoder
        self.style = style
        self.content_layers = list(cfg.content_layers)
        self.style_layers = list(cfg.style_layers)
        self.layers = list(dict.fromkeys(self.content_layers + self.style_layers))
        self.weights = [1.0] * len(scales) if cfg.scale_weights is None else [float(w) for w in cfg.scale_weights]
        self._style_grams: dict[int, dict[str, torch.Tensor]] = {}
        for s in scales:
            self.style_grams(s)

    def style_grams(self, side: int) -> dict[str, torch.Tensor]:
        """Gram targets of the style image resized to an output of long side ``side`` (once per side)."""
        if side not in self._style_grams:
            with torch.no_grad():
                style = resize(self.style, max(16, round(side * self.cfg.style_scale)))
                feats = self.encoder(style, self.style_layers)
            self._style_grams[side] = {layer: gram_matrix(feats[layer]) for layer in self.style_layers}
        return self._style_grams[side]

    def __call__(self, outputs: list[torch.Tensor], content: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.cfg
        total = torch.zeros((), device=outputs[0].device)
        terms: dict[str, float] = {}
        for k, (out, lam) in enumerate(zip(outputs, self.weights)):
            if lam == 0:
                continue
            out = out.float()
            with torch.no_grad():
                target = self.encoder(resize(content, tuple(out.shape[-2:]), mode="bilinear"), self.content_layers)
            feats = self.encoder(out, self.layers)
            lc = sum(content_loss(feats[layer], target[layer]) for layer in self.content_layers) / len(
                self.content_layers
            )
            grams = self.style_grams(max(out.shape[-2:]))
            ls = sum(gram_loss(gram_matrix(feats[layer]), grams[layer]) for layer in self.style_layers)
            ls = ls / len(self.style_layers)
            c, s = lam * cfg.content_weight * lc, lam * cfg.style_weight * ls
            terms[f"content{k + 1}"], terms[f"style{k + 1}"] = float(c.detach()), float(s.detach())
            total = total + c + s
            if cfg.tv_weight > 0:
                tv = lam * cfg.tv_weight * tv_loss(out)
                terms[f"tv{k + 1}"] = float(tv.detach())
                total = total + tv
        return total, terms


def training_images(cfg) -> list[str]:
    """The configured training images, or the default set when ``data`` is empty."""
    return list_images(list(cfg.data) if len(cfg.data) else default_images(), "data")


def _fingerprint(cfg) -> dict:
    container = OmegaConf.to_container(cfg, resolve=True)
    return fingerprint({k: v for k, v in container.items() if k not in REPORTING_KEYS})


def _optimizer_tensors(opt: torch.optim.Optimizer, params: list) -> dict[str, torch.Tensor]:
    out = {}
    for i, p in enumerate(params):
        for key, value in opt.state.get(p, {}).items():
            out[f"opt.{i}.{key}"] = value if torch.is_tensor(value) else torch.tensor(float(value))
    return out


def _restore_optimizer(opt: torch.optim.Optimizer, params: list, tensors: dict[str, torch.Tensor]) -> None:
    for i, p in enumerate(params):
        state = {k.split(".", 2)[2]: v.to(p.device) for k, v in tensors.items() if k.startswith(f"opt.{i}.")}
        if state:
            opt.state[p] = state


def train(cfg, callbacks=(), header: str = "") -> Path:
    """Train the network ``cfg`` describes (a resolved training config); returns the finished run folder, which
    holds the model file ``cfg.model_name``."""
    check_train_files(cfg)  # bad paths as one-line errors, before any network, data or folder
    scales = train_scales(cfg)
    device = resolve_device(cfg.device)
    initial = _initial_weights(cfg)  # a mismatched init_model answers before the data are read
    dataset = CropDataset(
        training_images(cfg), scales[-1], tuple(cfg.rescale), cfg.seed, tuple(cfg.crop_factors), device=device
    )
    style = load_image(cfg.style, what="style image")
    validation = [load_image(p, size=scales[-1], what="validation image") for p in cfg.validation]
    for i in range(len(dataset.files)):  # every training image readable before any work starts
        dataset._image(i)
    torch.manual_seed(cfg.seed)
    net = FeedForward(cfg.method, scales, cfg.width).to(device)
    params = list(net.parameters())
    opt = make_optimizer("adam", params, cfg.lr)

    with RunDir(cfg.out_dir, f"train-{cfg.method}", resume=cfg.resume, fingerprint=_fingerprint(cfg)) as run:
        run.save_config(to_yaml(cfg, header or f"semstyle train ({cfg.method})"))
        # the network runs in the encoder's autocast, so the encoder takes the precision the network is fastest in
        precision = config_precision(cfg, device)
        encoder = vgg19_encoder(cfg.pooling, precision, str(device), conv=cfg.conv)
        loss_fn = HierarchicalLoss(cfg, encoder, style.to(device), scales)
        start, seconds = 0, 0.0
        saved = run.load_checkpoint()
        if saved is not None:
            tensors, meta = saved
            net.load_state_dict({k[4:]: v.to(device) for k, v in tensors.items() if k.startswith("net.")})
            _restore_optimizer(opt, params, tensors)
            start, seconds = int(meta["step"]), float(meta.get("seconds", 0.0))
        elif initial is not None:
            net.load_state_dict({k: v.to(device) for k, v in initial[0].items()})
        state = {"step": start, "outputs": None}
        began = time.perf_counter()

        def loss():
            batch = dataset.batch(state["step"], cfg.batch_size)
            with encoder.autocast():
                outputs = net(batch, batch.shape[-1])
            state["outputs"] = outputs
            return loss_fn(outputs, batch)

        def elapsed() -> float:
            return seconds + time.perf_counter() - began

        def checkpoint(step: int) -> None:
            tensors = {f"net.{k}": v for k, v in net.state_dict().items()}
            run.save_checkpoint({**tensors, **_optimizer_tensors(opt, params)}, step=step, seconds=elapsed())

        def samples(step: int) -> None:
            net.eval()
            rows = []
            with torch.no_grad(), encoder.autocast():
                for photo in validation:
                    outs = net(photo.to(device))
                    rows.append(side_by_side([photo] + [o.float().cpu() for o in outs], height=scales[-1] // 2))
            net.train()
            width = max(r.shape[-1] for r in rows)
            rows = [torch.nn.functional.pad(r, (0, width - r.shape[-1]), value=1.0) for r in rows]
            run.save_image(f"samples/step_{step:06d}.png", torch.cat(rows, dim=2))

        listeners = [ProgressBar(cfg.progress), *callbacks]
        label = f"train {cfg.method} {'/'.join(map(str, scales))} px"

        def emit(kind: str, **kw) -> None:
            event = Event(kind, cfg.method, steps=cfg.steps - start, run_dir=run.path, label=label, **kw)
            for listener in listeners:
                listener(event)

        def on_step(i: int, total: float, terms: dict[str, float]) -> None:
            step = start + i
            state["step"] = step
            run.log.add(0, step, total, terms)
            emit("step", step=i, loss=total, terms=terms)
            if step % cfg.checkpoint_every == 0 and step < cfg.steps:
                checkpoint(step)
            if step % cfg.sample_every == 0:
                samples(step)

        problem = Problem(
            params,
            loss,
            image=lambda: state["outputs"][-1][:1].detach().float(),
            optimizer="adam",
            lr=cfg.lr,
            label=label,
        )
        net.train()
        emit("scale_start")
        if cfg.steps > start:
            run_steps(problem, cfg.steps - start, on_step, where=f" of {label}", optimizer=opt)
        emit("scale_end")
        if cfg.steps % cfg.sample_every != 0 or cfg.steps == start:
            samples(max(cfg.steps, start))
        training = {
            "steps": max(cfg.steps, start),
            "seconds": round(elapsed(), 1),
            "images_seen": max(cfg.steps, start) * cfg.batch_size,
            "data": [Path(f).name for f in dataset.files],
            "crop_factors": list(dataset.factors),
            "command": " ".join(shlex.quote(a) for a in ["semstyle", *sys.argv[1:]]),
            "precision": encoder.precision,
            "device": str(device),
        }
        if initial is not None:
            training["init_model"] = initial[1]
        model_config = {
            "style": Path(cfg.style).name,
            **{
                k: OmegaConf.to_container(cfg, resolve=True)[k]
                for k in ("content_weight", "style_weight", "tv_weight", "content_layers", "style_layers")
            },
            "pooling": cfg.pooling,
            "style_scale": cfg.style_scale,
        }
        save_model(net.cpu(), run.path / cfg.model_name, model_config, training)
        (run.path / "training.json").write_text(json.dumps(training, indent=2) + "\n")
        emit("run_end")
        return run.final


def _initial_weights(cfg) -> tuple[dict[str, torch.Tensor], dict] | None:
    """``init_model``'s weights (fp32) and what the new model file records of it (file, scales, training), or None.

    A one-line :class:`ConfigError` when the file is not a complete model (:func:`load_model`'s checks) or its
    network is not the one ``cfg`` trains.

    The training resolutions may differ: the networks are fully convolutional, so the same weights run at any
    size, and a model trained at small sizes can go on at larger ones (the stages must be the same in number).
    """
    if cfg.init_model is None:
        return None
    net, meta = load_model(cfg.init_model)
    config = meta["config"]
    theirs = (config["arch"], list(config["scales"]), int(config["width"]))
    ours = (cfg.method, train_scales(cfg), int(cfg.width))
    if (theirs[0], len(theirs[1]), theirs[2]) != (ours[0], len(ours[1]), ours[2]):
        raise ConfigError(
            f"init_model {cfg.init_model}: a {theirs[0]} network at {'/'.join(map(str, theirs[1]))} px, width "
            f"{theirs[2]}; this config trains a {ours[0]} network at {'/'.join(map(str, ours[1]))} px, width {ours[2]}"
        )
    record = {"file": Path(str(cfg.init_model)).name, "scales": theirs[1], "training": meta["training"]}
    return net.state_dict(), record
