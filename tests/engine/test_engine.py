"""The engine: one event stream for every method, callbacks that can stop a run, resolved configs, light start-up."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ASSETS, ROOT
from omegaconf import OmegaConf
from PIL import Image

from semstyle.api import METHODS, load_config, run
from semstyle.conf import SCHEMAS, load, scale_schedule, steps_per_scale
from semstyle.engine import Engine, Problem, StopRun
from semstyle.engine.callbacks import ProgressBar
from semstyle.engine.events import Event
from semstyle.errors import ConfigError, SemstyleError

SMALL = [
    "size=48",
    "steps=3",
    "progress=false",
    "precision=fp32",
    f"content={ASSETS / 'content/tubingen.jpg'}",
    f"style={ASSETS / 'styles/starry_night.jpg'}",
]


def test_events_arrive_in_order_with_losses_and_images(tmp_path):
    events = []
    run(None, SMALL + ["scales=[32]", f"out_dir={tmp_path / 'r'}"], callbacks=[events.append])
    kinds = [e.kind for e in events]
    assert kinds == [
        "run_start",
        "scale_start",
        "step",
        "step",
        "step",
        "scale_end",
        "scale_start",
        "step",
        "step",
        "step",
        "scale_end",
        "run_end",
    ]
    steps = [e for e in events if e.kind == "step"]
    assert [(e.scale, e.step) for e in steps] == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3)]
    assert all(e.scales == 2 and e.steps == 3 and e.loss > 0 and set(e.terms) >= {"content", "style"} for e in steps)
    image = steps[-1].current_image()
    assert image.shape[:2] == (1, 3) and max(image.shape[-2:]) == 48 and 0 <= image.min() and image.max() <= 1
    assert steps[0].size == (24, 32) and steps[-1].size == (36, 48)


def test_the_progress_bar_names_each_scale_among_the_runs(capsys):
    bar = ProgressBar()
    for scale in range(2):
        bar(Event("scale_start", "gatys", scale=scale, scales=2, steps=2, label=f"gatys {32 * (scale + 1)}px"))
        bar(Event("step", "gatys", scale=scale, scales=2, step=1, steps=2, loss=1.0))
        bar(Event("scale_end", "gatys", scale=scale, scales=2))
    bar(Event("scale_start", "train", steps=2, label="train"))  # a run of one scale: no count
    bar(Event("run_end", "train"))
    err = capsys.readouterr().err
    assert "gatys 32px [1/2]" in err and "gatys 64px [2/2]" in err
    assert "train: " in err and "train [" not in err


def test_a_callback_can_stop_the_run_and_the_folder_is_finished(tmp_path):
    def stop_after_two(event):
        if event.kind == "step" and event.step == 2:
            raise StopRun

    out = tmp_path / "stopped"
    path = run(None, SMALL + ["steps=50", f"out_dir={out}"], callbacks=[stop_after_two])
    assert path == out and (out / "output.png").is_file() and not (tmp_path / "stopped.partial").exists()
    assert len((out / "losses.csv").read_text().splitlines()) == 1 + 2  # header + the two steps that ran


def test_model_parameters_optimise_through_the_same_loop():
    """The engine optimises any parameters: here a 1x1 convolution (a model) towards a target image."""
    cfg = OmegaConf.create(
        {
            "method": "test",
            "seed": 0,
            "steps": 40,
            "progress": False,
            "save_every": 0,
            "precision": "fp32",
            "device": "cpu",
        }
    )
    torch.manual_seed(0)
    source, target = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    model = torch.nn.Conv2d(3, 3, 1)
    losses = []

    def problem(index, size, previous):
        def loss():
            value = (model(source) - target).pow(2).mean()
            return value, {"mse": float(value.detach())}

        return Problem(list(model.parameters()), loss, image=lambda: model(source), optimizer="adam", lr=0.05)

    Engine(cfg, callbacks=[lambda e: losses.append(e.loss) if e.kind == "step" else None]).run([8], problem)
    assert len(losses) == 40 and losses[-1] < 0.5 * losses[0]


def test_every_method_is_registered_with_its_schema():
    assert set(METHODS) == set(SCHEMAS) == {"gatys", "doodle", "cnnmrf", "strotss", "dst", "reconstruct"}
    for name, method in METHODS.items():
        assert method.schema.name == name and callable(method.solve)


def test_config_yaml_is_fully_resolved_with_provenance(tmp_path):
    cfg = load(SCHEMAS["dst"], {"base": "gram"})
    assert cfg.warp_tv_weight == 50.0 and cfg.optimizer == "adam" and cfg.warp_lr == 0.3 and cfg.pooling == "avg"
    assert load(SCHEMAS["dst"]).optimizer == "sgd"
    doodle = load(
        SCHEMAS["doodle"], {"style": "a.jpg", "style_loss": "gram_masked", "style_map": "m.png", "content_map": "t.png"}
    )
    assert doodle.style_weight == 1e-2 and len(doodle.style_layers) == 5
    path = run(None, SMALL + [f"out_dir={tmp_path / 'r'}"])
    text = (path / "config.yaml").read_text()
    assert text.startswith("# semstyle ") and "# command: " in text
    assert load_config(path / "config.yaml").size == 48  # a run folder's config runs again as it is


def test_cnnmrf_is_a_preset_of_doodle():
    cnnmrf = load_config({"method": "cnnmrf"})
    doodle = load_config({"method": "doodle", "style": "a.jpg", "content": "b.jpg"})
    assert cnnmrf.mrf.stride == 2 and cnnmrf.mrf.search == "exact" and cnnmrf.style_layer_weights == [88.0, 44.0]
    assert doodle.mrf.stride == 1 and doodle.mrf.search == "patchmatch"
    assert set(OmegaConf.to_container(cnnmrf)) == set(OmegaConf.to_container(doodle))


@pytest.mark.parametrize(
    "override, message",
    [
        ("resume=maybe", "resume: must be true or false, got 'maybe'"),
        ("size=abc", "size: must be an integer, got 'abc'"),
        ("content=${nowhere}", "content: "),
        ("reg_weight=1", "unknown config key 'reg_weight' for method gatys"),
    ],
)
def test_config_errors_are_one_line(override, message):
    with pytest.raises(ConfigError, match=message.replace("$", r"\$").replace("{", r"\{")) as info:
        load_config(None, [override])
    assert "\n" not in str(info.value)


def test_a_config_for_another_method_says_so():
    with pytest.raises(ConfigError, match="was written for method gatys, not doodle"):
        load_config(ROOT / "configs/default.yaml", ["method=doodle"])


def test_old_spellings_still_work_with_a_warning():
    with pytest.warns(DeprecationWarning, match="'reg_weight' is now spelled 'warp_tv_weight'"):
        cfg = load_config({"method": "dst", "reg_weight": 7.0})
    assert cfg.warp_tv_weight == 7.0
    # the doodle's nested keys of before one vocabulary: a whole group, and a dotted override
    old = {"method": "doodle", "style": {"image": "a.jpg", "map": "m.png", "weight": 3.0}, "target": {"map": "t.png"}}
    with pytest.warns(DeprecationWarning, match="'style.image' is now spelled 'style'"):
        cfg = load_config(old, ["content.image=c.jpg", "semantic.resize_maps=true"])
    assert (cfg.style, cfg.style_map, cfg.style_weight, cfg.content_map) == ("a.jpg", "m.png", 3.0, "t.png")
    assert cfg.content == "c.jpg" and cfg.resize_maps is True


def test_the_command_line_starts_without_torch():
    code = (
        "import sys; from semstyle.cli import build_parser; build_parser(); "
        "from semstyle.conf import SCHEMAS, load; load(SCHEMAS['gatys']); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    # a config error answers before torch and the methods load (issue 17: in well under 1.5 s)
    code = (
        "import sys; from semstyle.cli import main; "
        "code = main(['run', 'size=abc']); main(['doodle', 'style.loss=nope']); print(code, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "2 False"
    assert done.stderr.splitlines()[0] == "semstyle: error: size: must be an integer, got 'abc'"


def test_file_errors_answer_before_torch_loads(tmp_path):
    # an unreadable or truncated image, a missing or malformed keypoint file, a missing model or data folder, a
    # video OpenCV cannot read, a used output folder and a size too small for the network are one line each, before
    # torch loads, in every command (issue 17: they took 2.5-3.9 s, the imports of torch and the methods)
    image, points, used = tmp_path / "not-an-image.jpg", tmp_path / "a.txt", tmp_path / "used"
    photo, painting = str(ASSETS / "content/astronaut.jpg"), str(ASSETS / "styles/monalisa.jpg")
    image.write_text("hello")
    small_map = tmp_path / "map.png"
    Image.new("RGB", (40, 30), (255, 0, 0)).save(small_map)
    used.mkdir()
    (used / "output.png").write_bytes(b"")
    # a download cut short: the header reads, the pixels do not
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes((ASSETS / "content/astronaut.jpg").read_bytes()[:20000])
    # keypoint files DST or `nbb --clean-only` would read after torch: a malformed line, a point outside the
    # astronaut (512x512), two pairs where DST needs three
    bad, far, two = tmp_path / "bad.txt", tmp_path / "far.txt", tmp_path / "two.txt"
    bad.write_text("10, 20\n30, 40, 50\n")
    far.write_text("10, 20\n30, 40\n600, 50\n")
    two.write_text("10, 20\n30, 40\n")
    dst = ["run", "method=dst", f"content={photo}", f"style={painting}"]
    video = tmp_path / "clip.mp4"
    video.write_bytes(bytes(range(256)) * 8)
    cases = [
        (["run", f"content={image}"], f"content image {image}: not a readable image (UnidentifiedImageError"),
        (
            ["run", "method=dst", f"content_keypoints={points}", f"style_keypoints={points}"],
            f"keypoint file A {points}: file not found",
        ),
        (["run", f"out_dir={used}"], f"out_dir {used}: already exists and is not empty; choose another out_dir"),
        (["doodle", "--style", str(image), "--content", photo], f"style image {image}: not a readable image"),
        (["stylize", "--model", "johnson", str(image)], f"input image {image}: not a readable image"),
        (["stylize", "--model", str(points), photo], f"model {points}: not found"),
        (["train", f"data=[{tmp_path / 'none'}]"], f"data: {tmp_path / 'none'} is not a file or folder"),
        (["train", f"init_model={points}"], f"init_model {points}: not found"),
        (["nbb", photo, str(image)], f"image B {image}: not a readable image"),
        (["nbb", photo, photo, "--out", str(used)], f"--out {used}: already exists and is not empty"),
        (["features", str(image)], f"image {image}: not a readable image"),
        (["report", str(used)], f"{used}: not a sweep folder (no sweep.json)"),
        (
            ["sweep", str(ROOT / "configs/default.yaml"), f"style={image},{photo}", "--out", str(tmp_path / "sw")],
            f"run 000 (style={image}): style image {image}: not a readable image",
        ),
        (
            ["search", str(ROOT / "configs/default.yaml"), "stlye_weight=interval(1e-7,1e-5)", "--minimize", "ssim"],
            "a trial with stlye_weight=1e-07: unknown config key 'stlye_weight'",
        ),
        (
            ["search", str(ROOT / "configs/default.yaml"), f"content={truncated}", "style_weight=interval(1e-7,1e-5)"]
            + ["--minimize", "ssim", "--out", str(tmp_path / "se")],
            f"a trial with style_weight=1e-07: content image {truncated}: not a readable image (OSError",
        ),
        # sizes too small for the network, read from the headers
        (["run", "size=16"], f"content image {ROOT / 'semstyle/assets/content/tubingen.jpg'}: 512x384 px becomes"),
        (["run", "method=strotss", f"content={photo}", "size=20"], f"style image {ROOT / 'semstyle/assets/styles'}"),
        (
            ["run", "size=40", "laplacian.weight=100", "laplacian.pool_sizes=[16]"],
            "laplacian.pool_sizes: pool size 16 leaves a 1x2 image",
        ),
        (
            ["doodle", "--style", painting, "--content", photo, "--auto-maps", "3", "size=30"],
            f"style image {painting}: 343x512 px becomes 21x32 px",
        ),
        # a region map of another size than its image, read from the headers
        (
            ["run", "method=strotss", f"content={photo}", f"content_map={small_map}", f"style_map={small_map}"],
            f"content_map {small_map} is 40x30 but the content image is 512x512",
        ),
        (
            ["doodle", "--style", painting, "--style-map", str(small_map), "--content-map", str(small_map)],
            f"style map {small_map} is 40x30 but the style image is 343x512",
        ),
        (
            ["sweep", str(ROOT / "configs/default.yaml"), "size=16,64", "--out", str(tmp_path / "sw2")],
            "run 000 (size=16): content image",
        ),
        # decoded to the end, and parsed
        (["run", f"style={truncated}"], f"style image {truncated}: not a readable image (OSError: image file is trunc"),
        (["nbb", str(truncated), photo], f"image A {truncated}: not a readable image (OSError"),
        (
            [*dst, f"content_keypoints={bad}", f"style_keypoints={far}"],
            f"keypoint file A {bad}, line 2: expected 'row, col', got '30, 40, 50'",
        ),
        (
            [*dst, f"content_keypoints={far}", f"style_keypoints={far}"],
            f"keypoint file A {far}, line 3: point (row 600, col 50) is outside the 512x512 image",
        ),
        (
            [*dst, f"content_keypoints={two}", f"style_keypoints={two}"],
            f"keypoint files {two}, {two}: 2 keypoint pairs; DST needs at least 3",
        ),
        (["nbb", photo, painting, "--clean-only", str(two), str(bad)], f"keypoint file B {bad}, line 2: expected"),
        (["stylize", "--model", "johnson", photo, str(video)], f"input video {video}: cannot be read (not a video"),
        (["train", f"data=[{photo},{truncated}]"], f"training image {truncated}: not a readable image (OSError"),
    ]
    code = (
        "import sys; from semstyle.cli import main; "
        f"codes = [main(argv) for argv, _ in {cases!r}]; print(codes, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"{[2] * len(cases)} False", done.stderr
    for line, (_, message) in zip(done.stderr.splitlines(), cases, strict=True):
        assert line.startswith("semstyle: error: " + message), line


def test_run_works_from_any_folder(tmp_path):
    """The default config and its images ship inside the package. A Gatys run never imports ``torch._dynamo``
    (1.2-1.7 s: :func:`semstyle.engine.make_optimizer`) nor sympy (0.5-1 s: the encoder's layers are built on the
    meta device)."""
    env_code = (
        "import sys; from semstyle.cli import main; "
        "code = main(['run', 'size=32', 'steps=2', 'progress=false', 'out_dir=out']); "
        "print('torch._dynamo' in sys.modules or 'sympy' in sys.modules); sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", env_code], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "output.png").is_file()
    assert done.stdout.splitlines()[-1] == "False"


def test_bundled_configs_find_their_images_from_any_folder(tmp_path, monkeypatch):
    """Bundled images are named ``${asset:...}``; other relative paths are read from the current folder, and a
    missing one says which folder that was."""
    from semstyle.conf import check_input_files, load_train_config

    monkeypatch.chdir(tmp_path)
    loaded = 0
    for path in sorted((ROOT / "configs").rglob("*.yaml")):
        shared = "../shared/" in path.read_text()
        if path.parent.name == "feedforward":
            cfg = load_train_config(path)
            assert Path(cfg.style).is_file() and Path(cfg.style).is_absolute(), path
        elif shared:
            with pytest.raises(SemstyleError, match=rf"\.\./shared/.*: file not found \(relative to {tmp_path}\)"):
                check_input_files(load_config(path))
        else:
            check_input_files(load_config(path))
        loaded += not shared
    assert loaded >= 12
    assert load_config(None, ["content=${asset:content/astronaut.jpg}"]).content == str(
        ROOT / "semstyle/assets/content/astronaut.jpg"
    )
    for bad, message in [
        ("${asset:../setup.cfg}", "'..' leaves semstyle/assets/"),
        ("${asset:/etc/passwd}", "expected a path under semstyle/assets/"),
        ("${asset:}", "expected a path under semstyle/assets/"),
    ]:
        with pytest.raises(ConfigError, match=rf"^content: \$\{{asset:.*\}}: {message}"):
            load_config(None, [f"content={bad}"])


def test_a_command_without_a_config_file_starts_from_the_named_methods_defaults():
    # the demo's config when no method is named; a named method's own schedule, not the demo's Gatys one
    from semstyle.cli.commands import DEFAULT_CONFIG, base_config

    assert base_config(None, ["size=64"]) == DEFAULT_CONFIG
    assert base_config("mine.yaml", ["method=dst"]) == "mine.yaml"
    dst = load_config(base_config(None, ["method=dst", "size=256"]), ["method=dst", "size=256"])
    demo_on_dst = load_config(DEFAULT_CONFIG, ["method=dst", "size=256"])
    assert dst == load_config(None, ["method=dst", "size=256"])
    assert (dst.steps, list(dst.scales)) != (demo_on_dst.steps, list(demo_on_dst.scales))
    assert base_config(None, ["size=64", "method = strotss"]) is None


def test_scale_steps_give_each_coarse_scale_its_own_steps(tmp_path):
    events = []
    run(None, SMALL + ["scales=[32,40]", "scale_steps=[5,2]", f"out_dir={tmp_path / 'r'}"], callbacks=[events.append])
    per_scale = [[e.step for e in events if e.kind == "step" and e.scale == s] for s in (0, 1, 2)]
    assert per_scale == [[1, 2, 3, 4, 5], [1, 2], [1, 2, 3]]  # the final size runs `steps` (3)
    assert [e.steps for e in events if e.kind == "scale_start"] == [5, 2, 3]
    with pytest.raises(ConfigError, match="scale_steps: 1 entries given for the 2 scales below size=48"):
        load_config(None, SMALL + ["scales=[32,40]", "scale_steps=[5]"])


def test_coarse_steps_apply_to_every_coarse_scale_whatever_the_scales_override():
    """The demo config sets ``coarse_steps``, so ``scales=...`` of any length still loads; ``scale_steps`` wins."""
    demo = ROOT / "configs/default.yaml"
    assert load_config(demo).coarse_steps == 20
    for scales, expected in (("[]", [100]), ("[128]", [20, 100]), ("[64,128,256]", [20, 20, 20, 100])):
        cfg = load_config(demo, [f"scales={scales}"])
        assert steps_per_scale(cfg, len(scale_schedule(cfg))) == expected
    cfg = load_config(demo, ["scales=[64,128]", "scale_steps=[7,9]"])
    assert steps_per_scale(cfg, len(scale_schedule(cfg))) == [7, 9, 100]
    with pytest.raises(ConfigError, match="coarse_steps"):
        load_config(demo, ["coarse_steps=-1"])


def test_scale_steps_are_checked_against_the_doodles_phases_as_they_run():
    """The doodle's phases halve ``size`` down to 32 px, so at 64 px three phases are two scales: the loader counts
    the scales the engine will run (one schedule, :func:`semstyle.conf.scale_schedule`), not the phases asked for."""
    doodle = ROOT / "configs/doodle/monet.yaml"
    cfg = load_config(doodle, ["size=64", "phases=3", "scale_steps=[10]"])
    assert scale_schedule(cfg) == [32, 64]
    with pytest.raises(ConfigError, match="scale_steps: 2 entries given for the 1 scales below size=64"):
        load_config(doodle, ["size=64", "phases=3", "scale_steps=[10,10]"])


def test_the_stop_rule_ends_each_scale_when_the_loss_stops_falling(tmp_path):
    events = []
    overrides = SMALL + [
        "steps=200",
        "scales=[32]",
        "stop.rule=rel_improvement",
        "stop.threshold=0.01",
        "stop.window=3",
        "stop.min_steps=5",
        f"out_dir={tmp_path / 'r'}",
    ]
    run(None, overrides, callbacks=[events.append])
    per_scale = [max(e.step for e in events if e.kind == "step" and e.scale == s) for s in (0, 1)]
    assert all(5 <= n < 200 for n in per_scale), per_scale  # both scales ran and both ended early
    with pytest.raises(ConfigError, match="stop.rule: 'sometimes' is not one of none, rel_improvement"):
        load_config(None, ["stop.rule=sometimes"])


def test_lbfgs_history_sets_the_curvature_pairs_of_every_scale(tmp_path, monkeypatch):
    """``lbfgs_history`` reaches each scale's L-BFGS (the default is the engine's ``LBFGS_HISTORY``), and a short
    history changes the steps once more pairs than it keeps were measured."""
    import semstyle.engine.loop as loop

    made = []
    original = loop.make_optimizer

    def recording(*args, **kwargs):
        made.append(original(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(loop, "make_optimizer", recording)
    losses = {}
    for history in (None, 2):
        events = []
        extra = [] if history is None else [f"lbfgs_history={history}"]
        run(
            None,
            SMALL + ["steps=8", "scales=[32]", *extra, f"out_dir={tmp_path / str(history)}"],
            callbacks=[events.append],
        )
        losses[history] = [e.loss for e in events if e.kind == "step" and e.scale == 0]
    assert [opt.defaults["history_size"] for opt in made] == [loop.LBFGS_HISTORY] * 2 + [2] * 2
    assert losses[None][:2] == losses[2][:2] and losses[None][-1] != losses[2][-1]
    for bad in ("0", "1.5", "many"):
        with pytest.raises(ConfigError, match="lbfgs_history: must be"):
            load_config(None, [f"lbfgs_history={bad}"])


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.5, 1.5])
def test_ctrl_c_during_start_up_is_one_line(tmp_path, delay):
    """A SIGINT while the command line is still importing torch ends as a later one does: one line, exit 130."""
    import signal
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "semstyle", "run", "size=32", "steps=50", "progress=false", f"out_dir={tmp_path / 'r'}"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("name", ["lbfgs", "adam", "sgd", "rmsprop"])
def test_the_engines_optimisers_step_and_save_as_torchs_own(name):
    """:func:`semstyle.engine.make_optimizer`'s classes drop the wrappers that import ``torch._dynamo``; their
    steps, grad mode and state are torch's to the bit."""
    from semstyle.engine import make_optimizer
    from semstyle.engine.loop import LBFGS_HISTORY

    torch_class = {
        "lbfgs": torch.optim.LBFGS,
        "adam": torch.optim.Adam,
        "sgd": torch.optim.SGD,
        "rmsprop": torch.optim.RMSprop,
    }
    options = {"lbfgs": dict(max_iter=1, history_size=LBFGS_HISTORY, tolerance_grad=-1, tolerance_change=-1)}
    target = torch.linspace(-1, 1, 12)

    def descend(opt, x, steps=5):
        def closure():
            opt.zero_grad(set_to_none=True)
            loss = ((x - target) ** 4).sum() + x.square().sum()
            loss.backward()
            return loss

        for _ in range(steps):
            opt.step(closure)  # an update under autograd would raise: a leaf that requires grad changed in place

    ours_x, theirs_x = torch.zeros(12, requires_grad=True), torch.zeros(12, requires_grad=True)
    ours = make_optimizer(name, [ours_x], 0.05)
    theirs = torch_class[name]([theirs_x], lr=0.05, **options.get(name, {}))
    assert isinstance(ours, type(theirs))
    descend(ours, ours_x)
    descend(theirs, theirs_x)
    assert torch.equal(ours_x, theirs_x)
    # a state saved by one loads into the other and both go on alike
    mine, other = ours.state_dict(), theirs.state_dict()
    assert mine.keys() == other.keys()
    theirs.load_state_dict(copy.deepcopy(mine))  # state_dict() holds the live state tensors
    descend(ours, ours_x)
    descend(theirs, theirs_x)
    assert torch.equal(ours_x, theirs_x) and ours_x.requires_grad and ours_x.grad_fn is None


def test_a_fresh_strotss_or_dst_run_loads_neither_dynamo_nor_sympy(tmp_path):
    """Adam's and RMSprop's steps import ``torch._dynamo`` (with sympy, 1.2-1.7 s) through a wrapper the engine's
    optimisers do without."""
    code = (
        "import sys; from semstyle.cli import main; "
        "codes = [main(['run', *args.split(), 'progress=false', f'out_dir={out}']) for args, out in ["
        f"('method=strotss size=48 scales=[] steps=2', {str(tmp_path / 'a')!r}), "
        f"('method=dst base=gram size=48 steps=2', {str(tmp_path / 'b')!r})]]; "
        "print(codes, 'torch._dynamo' in sys.modules or 'sympy' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.splitlines()[-1] == "[0, 0] False", done.stderr
