"""Issue 21: resume checks what it resumes, run folders lock, divergence is reported, and faults a resume cannot
fix (out of memory, a full disk, an unreadable checkpoint) end in one honest line."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ASSETS, ROOT, SHARED
from PIL import Image

from semstyle.cli import main
from semstyle.core import nnpack
from semstyle.engine import divergence, resources, runs
from semstyle.engine import engine as engine_module
from semstyle.engine.fingerprint import diff, fingerprint

CONTENT, STYLE = ASSETS / "content/tubingen.jpg", ASSETS / "styles/starry_night.jpg"
OTHER_STYLE = next(p for p in sorted((ASSETS / "styles").iterdir()) if p != STYLE)
BASE = ["size=64", "scales=[32]", "steps=2"]


def _run(out, *args, config="configs/default.yaml", content=CONTENT, style=STYLE):
    extra = ([f"content={content}"] if content else []) + ([f"style={style}"] if style else [])
    return main(["run", str(ROOT / config), *extra, "progress=false", f"out_dir={out}", *args])


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("semstyle: error:") and "\n" not in err and "Traceback" not in err, err
    return err


def _crash_in_scale_1(monkeypatch):
    """Make the run fail after scale 0 was checkpointed, as a kill -9 would; returns a switch to stop crashing."""
    calls = {"n": 0, "crash": True}
    original = engine_module.run_steps

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["crash"] and calls["n"] == 2:
            raise RuntimeError("simulated crash in scale 1")
        return original(*args, **kwargs)

    monkeypatch.setattr(engine_module, "run_steps", flaky)
    return calls


def _interrupted(tmp_path, monkeypatch, *args, style=STYLE):
    out = tmp_path / "run"
    calls = _crash_in_scale_1(monkeypatch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(out, *BASE, *args, style=style)
    assert (tmp_path / "run.partial" / runs.CHECKPOINT).exists()
    calls["crash"] = False
    return out


# --- 1. resume checks the checkpoint against the run --------------------------------------------------------------
@pytest.mark.parametrize(
    "changed, names",
    [
        (["scales=[]"], "scales=[32]; this run has scales=[]"),
        (["size=80"], "size=64; this run has size=80"),
        ([f"style={OTHER_STYLE}"], f"style={STYLE}, sha256(style)="),
    ],
)
def test_resume_with_changed_settings_is_refused_in_one_line(tmp_path, monkeypatch, capsys, changed, names):
    out = _interrupted(tmp_path, monkeypatch)
    capsys.readouterr()
    overrides = [a for a in BASE if a.split("=")[0] not in {c.split("=")[0] for c in changed}] + changed
    style = OTHER_STYLE if changed[0].startswith("style=") else STYLE
    assert _run(out, *overrides, "resume=true", style=style) == 2
    err = _one_line_error(capsys)
    assert f"resume: the checkpoint in {out}.partial was made with" in err and names in err, err
    assert "start a new out_dir or restore those values" in err
    # the refused run touched nothing: the checkpoint still resumes with the original values
    assert not out.exists() and (tmp_path / "run.partial" / runs.CHECKPOINT).exists()
    assert _run(out, *BASE, "resume=true") == 0
    assert Image.open(out / "output.png").size == (64, 48)


def test_resume_notices_an_input_file_edited_in_place(tmp_path, monkeypatch, capsys):
    style = tmp_path / "style.jpg"
    style.write_bytes(STYLE.read_bytes())
    out = _interrupted(tmp_path, monkeypatch, style=style)
    style.write_bytes(OTHER_STYLE.read_bytes())
    capsys.readouterr()
    assert _run(out, *BASE, "resume=true", style=style) == 2
    err = _one_line_error(capsys)
    assert "sha256(style)=" in err and "size" not in err, err
    style.unlink()  # a deleted input is named as such, before the run folder is opened
    assert _run(out, *BASE, "resume=true", style=style) == 2
    assert f"style image {style}: file not found" in _one_line_error(capsys)


def test_cosmetic_keys_do_not_block_a_resume(tmp_path, monkeypatch):
    out = _interrupted(tmp_path, monkeypatch)
    assert _run(out, *BASE, "resume=true", "save_every=1") == 0  # progress, save_every, resume are not results


@pytest.mark.parametrize("damage", ["truncated", "empty", "flipped byte"])
def test_unreadable_checkpoint_is_one_line_and_not_advertised_as_resumable(tmp_path, monkeypatch, capsys, damage):
    out = _interrupted(tmp_path, monkeypatch)
    checkpoint = tmp_path / "run.partial" / runs.CHECKPOINT
    data = checkpoint.read_bytes()
    if damage == "flipped byte":  # in the image data at the end: the header still parses
        data = data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:]
    checkpoint.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"" if damage == "empty" else data)
    capsys.readouterr()
    assert _run(out, *BASE, "resume=true") == 2
    err = _one_line_error(capsys)
    assert f"the checkpoint {checkpoint} cannot be read" in err and "resume=true" not in err, err
    assert _run(out, *BASE) == 2
    err = _one_line_error(capsys)
    assert "cannot be resumed" in err and "resume=true" not in err, err


def test_fingerprint_diff_names_the_keys_that_differ(tmp_path):
    cfg = {
        "method": "gatys",
        "size": 64,
        "scales": [32],
        "style": str(STYLE),
        "progress": True,
        "out_dir": "a",
        "resume": False,
        "save_every": 0,
        "color": {"preserve": "none"},
    }
    a = fingerprint(cfg)
    assert "sha256(style)" in a and "progress" not in a and a["color.preserve"] == "none"
    assert diff(a, fingerprint({**cfg, "progress": False, "out_dir": "b", "resume": True, "save_every": 5})) == []
    assert diff(a, fingerprint({**cfg, "size": 128, "color": {"preserve": "luminance"}})) == ["color.preserve", "size"]


def test_auto_precision_per_config_in_the_engine_and_the_fingerprint(monkeypatch):
    """On a CPU with AVX512-BF16 alone `auto` keeps an encoder-bound method's encoder in fp32 (NNPACK), and STROTSS's
    methods and feed-forward training in bf16; the engine builds that encoder and a checkpoint's fingerprint records
    it, or another CPU could finish the run in the other precision."""
    from omegaconf import OmegaConf

    from semstyle.api import load_config
    from semstyle.core import encoder as enc

    monkeypatch.setattr(enc, "cpu_supports_bf16", lambda: True)
    monkeypatch.setattr(enc, "cpu_has_amx", lambda: False)
    monkeypatch.setattr(engine_module, "vgg19_encoder", lambda pooling, precision, device, conv: precision)
    winograd = "fp32" if nnpack.nnpack_ready() else "bf16"
    key = "precision (resolved)"
    for overrides, precision in (
        (["method=gatys"], winograd),
        (["method=gatys", "conv=native"], "bf16"),
        (["method=dst", "base=gram"], winograd),
        (["method=dst", "base=strotss"], "bf16"),
        (["method=strotss"], "bf16"),
    ):
        cfg = load_config(None, [*overrides, "device=cpu"])
        assert engine_module.Engine(cfg).encoder("avg") == precision, overrides
        assert fingerprint(OmegaConf.to_container(cfg, resolve=True))[key] == precision, overrides
    train = {"method": "johnson", "precision": "auto", "device": "cpu", "conv": "auto"}
    assert fingerprint(train)[key] == "bf16"
    monkeypatch.setattr(enc, "cpu_has_amx", lambda: True)
    assert fingerprint({"method": "gatys", "precision": "auto", "device": "cpu", "conv": "auto"})[key] == "bf16"


def _env():
    """The environment of a semstyle subprocess: this checkout, one thread (the runs are small)."""
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


RUN = [sys.executable, "-m", "semstyle", "run", "configs/default.yaml", "size=64", "progress=false"]


# --- 2. one process per run folder ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_second_process_on_a_live_run_folder_is_refused(tmp_path):
    out = tmp_path / "live"
    env = _env()
    cmd = RUN + ["scales=[]", f"out_dir={out}"]
    first = subprocess.Popen(
        cmd + ["steps=100000"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        lock = tmp_path / "live.partial" / runs.LOCK
        deadline = time.time() + 120
        config = tmp_path / "live.partial" / "config.yaml"
        while not (config.exists() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None, first.stderr.read()
            assert time.time() < deadline, "the first run did not start within 120 s"
            time.sleep(0.2)
        config = config.read_text()
        second = subprocess.run(
            cmd + ["steps=100000", "resume=true"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 2, second.stderr
        assert second.stderr.strip() == (
            f"semstyle: error: out_dir {out} is in use by process {first.pid}; "
            "wait for it to finish or choose another out_dir"
        )
        assert first.poll() is None  # the first run goes on, its folder untouched
        assert (tmp_path / "live.partial" / "config.yaml").read_text() == config
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # a dead owner leaves no lock behind (the kernel drops a flock with its process): the fingerprint check answers
    third = subprocess.run(
        cmd + ["steps=2", "resume=true"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert (
        third.returncode == 2
        and f"the unfinished run in {out}.partial was made with steps=100000; this run has steps=2" in third.stderr
    ), third.stderr


def test_a_filesystem_without_locks_warns_and_runs(tmp_path, monkeypatch, capsys):
    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(runs.fcntl, "flock", no_locks)
    out = tmp_path / "nfs"
    assert _run(out, "size=32", "scales=[]", "steps=1") == 0
    assert f"semstyle: warning: cannot lock {tmp_path}/nfs.partial/{runs.LOCK}" in capsys.readouterr().err
    assert (out / "output.png").exists() and not (out / runs.LOCK).exists()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """``output.png`` bytes of an uninterrupted run of :data:`SIGNAL_RUN`."""
    out = tmp_path_factory.mktemp("ref") / "ref"
    subprocess.run(SIGNAL_RUN + [f"out_dir={out}"], cwd=ROOT, env=_env(), check=True, capture_output=True, timeout=600)
    return (out / "output.png").read_bytes()


SIGNAL_RUN = RUN + [
    "scales=[32]",
    "steps=20",  # scale 1 (64 px, ~0.7 s on one thread) outlasts the signal, sent within 20 ms of the first checkpoint
]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["kill-9", "ctrl-c", "sigterm"])
def test_a_killed_run_resumes_to_the_same_bytes_under_the_lock_and_fingerprint(tmp_path, uninterrupted, sig):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        SIGNAL_RUN + [f"out_dir={out}"],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    checkpoint = tmp_path / "run.partial" / runs.CHECKPOINT
    deadline = time.time() + 300
    while not checkpoint.exists():
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() is not None else ""
        time.sleep(0.02)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    assert not out.exists(), "the run finished before the signal; raise steps"
    resumed = subprocess.run(
        SIGNAL_RUN + [f"out_dir={out}", "resume=true"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "output.png").read_bytes() == uninterrupted
    assert not (out / runs.LOCK).exists() and not (tmp_path / "run.partial").exists()


# --- 3. divergence is reported ---------------------------------------------------------------------------------------
# L-BFGS on pixels no longer diverges at lr=1e9: its steps are held to engine.loop.LBFGS_MAX_PIXEL_STEP
@pytest.mark.parametrize("optimizer", ["adam", pytest.param("sgd", marks=pytest.mark.slow)])
def test_divergence_with_a_huge_lr_is_warned_and_recorded(tmp_path, capsys, optimizer):
    out = tmp_path / "div"
    assert _run(out, "size=64", "scales=[]", "steps=30", f"optimizer={optimizer}", "lr=1e9") == 0
    err = capsys.readouterr().err.strip().splitlines()
    warnings = [line for line in err if line.startswith("semstyle: warning:")]
    assert len(warnings) == 1 and "diverged at scale 0" in warnings[0] and "try a smaller lr (now 1e+09)" in warnings[0]
    assert (out / runs.WARNINGS).read_text().strip() == warnings[0].removeprefix("semstyle: warning: ")


NORMAL = [  # the regression cases' sizes (tests/regression/cases.py)
    pytest.param("configs/default.yaml", ["size=64", "scales=[32]", "steps=20"], False, id="gatys"),
    pytest.param(
        "configs/strotss/default.yaml",
        ["size=64", "scales=[32]", "steps=10", "samples=256", "style_samples=1000"],
        False,
        id="strotss",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "configs/doodle/monet.yaml",
        ["size=96", "steps=10", "coarse_steps=10", "phases=2"],
        True,
        id="doodle",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "configs/dst/gatys.yaml",
        ["size=96", "scales=[64]", "steps=15", "coarse_steps=15"],
        True,
        id="dst",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize("config, overrides, shared", NORMAL)
def test_no_false_alarm_on_bundled_configs(tmp_path, capsys, monkeypatch, config, overrides, shared):
    if shared and not SHARED.is_dir():
        pytest.skip(f"needs the shared test material in {SHARED}")
    monkeypatch.chdir(ROOT)
    out = tmp_path / "ok"
    assert _run(out, *overrides, config=config, content=None, style=None) == 0
    assert "warning" not in capsys.readouterr().err and not (out / runs.WARNINGS).exists()


def test_divergence_rules():
    assert divergence.loss_diverged([100.0, 50.0, 10.0]) is None
    assert "rose from 100 to 400" in divergence.loss_diverged([100.0, 50.0, 400.0])
    corners = (torch.rand(1, 3, 32, 32) > 0.5).float()
    assert "100% of the pixel values" in divergence.image_saturated(corners, torch.rand(1, 3, 32, 32))
    assert divergence.image_saturated(corners, corners) is None  # it started that way
    white_paper = torch.ones(1, 3, 32, 32)
    white_paper[..., :4, :] = 0.3
    assert divergence.image_saturated(white_paper) is None  # pinned at one end only: a look, not a failure
    assert divergence.diagnose([1.0, 0.5], torch.rand(1, 3, 16, 16)) is None


# --- 4. faults a resume cannot fix ------------------------------------------------------------------------------
def test_a_size_that_clearly_cannot_fit_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(resources, "available_bytes", lambda: 2 * resources.GIB)
    monkeypatch.setattr(engine_module, "run_steps", lambda *a, **k: pytest.fail("heavy work started"))
    out = tmp_path / "big"
    # conv=native: the figures below are those of the native kernels' model (NNPACK's adds its workspace)
    assert _run(out, "size=4096", "device=cpu", "precision=fp32", "conv=native") == 2
    err = _one_line_error(capsys)
    assert "size=4096: a 4096x3072 px gatys run needs about 29.4 GiB" in err and "2.0 GiB is available" in err, err
    size = int(err.rsplit("try size=", 1)[1].split()[0])
    native = {"method": "gatys", "precision": "fp32", "conv": "native"}
    assert 256 <= size <= 1024 and resources.estimate_bytes(native, size * 3 // 4, size) < 2 * resources.GIB
    assert not out.exists() and not (tmp_path / "big.partial").exists()


def test_memory_estimate_is_quiet_when_the_run_fits(monkeypatch):
    cfg = {"method": "gatys", "size": 512, "content": str(CONTENT), "device": "cpu", "conv": "native"}
    resources.check_memory(cfg, available=2 * resources.GIB)  # 1.3 GiB needed: no refusal
    with pytest.raises(resources.ResourceError, match="needs about 1.3 GiB"):
        resources.check_memory(cfg, available=int(0.5 * resources.GIB))
    # NNPACK's kernels keep a workspace: the same run is estimated higher with them (where torch has NNPACK)
    with_nnpack = resources.estimate_bytes({**cfg, "conv": "nnpack"}, 384, 512)
    assert not nnpack.nnpack_ready() or with_nnpack > resources.estimate_bytes(cfg, 384, 512)


@pytest.mark.slow
def test_memory_model_matches_a_measured_peak(tmp_path):
    """The model, fitted to Gatys at 512-2048 px and STROTSS at 256-512 px, against a fresh STROTSS peak at 320 px."""
    out = tmp_path / "peak"
    code = (
        "import resource, sys; from semstyle.cli import main; rc = main(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "run",
            "configs/strotss/default.yaml",
            "size=320",
            "scales=[]",
            "steps=1",  # the peak is the first step's (2.0997 GB after 1 step, 2.1019 GB after 2; 10.2 s, 12.8 s)
            "precision=fp32",
            "progress=false",
            f"out_dir={out}",
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    peak = int(proc.stdout.strip().splitlines()[-1]) * 1024
    h, w = resources.content_shape({"size": 320, "content": str(CONTENT)})
    estimate = resources.estimate_bytes("strotss", h, w)
    # never far below the peak (an impossible run would start), nor so far above that a run that fits is refused;
    # the peak differs between machine kinds (resources.MACHINE_SPREAD), so a failure names the CPU it ran on
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    assert 0.8 * peak <= estimate <= 1.5 * peak, (estimate / resources.GIB, peak / resources.GIB, cpu)


def _out_of_memory_in_scale_1(monkeypatch):
    original = engine_module.run_steps
    calls = {"n": 0}

    def oom(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError(
                "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                "you tried to allocate 68719476736 bytes. Error code 12 (Cannot allocate memory)"
            )
        return original(*args, **kwargs)

    monkeypatch.setattr(engine_module, "run_steps", oom)
    return calls


def test_out_of_memory_beyond_the_machine_is_one_line_without_resume_advice(tmp_path, monkeypatch, capsys):
    _out_of_memory_in_scale_1(monkeypatch)
    monkeypatch.setattr(resources, "total_bytes", lambda: resources.GIB // 2)  # the run's 0.9 GiB can never fit
    out = tmp_path / "oom"
    assert _run(out, *BASE, "precision=fp32", "conv=native") == 2
    err = _one_line_error(capsys)
    assert err.startswith("semstyle: error: out of memory at 64 px: about 0.9 GiB needed (0.5 GiB in this machine)")
    assert "resume" not in err and "partial results kept" not in err, err
    assert not (tmp_path / "oom.partial").exists() and not out.exists()  # the same settings would run out again


def test_out_of_memory_that_other_programs_caused_keeps_the_checkpoint(tmp_path, monkeypatch, capsys):
    calls = _out_of_memory_in_scale_1(monkeypatch)
    monkeypatch.setattr(resources, "total_bytes", lambda: 16 * resources.GIB)
    out = tmp_path / "oom"
    assert _run(out, *BASE) == 2
    err = _one_line_error(capsys)
    assert (
        "of the machine's 16.0 GiB" in err
        and f"then resume=true continues (from the last finished scale, kept in {tmp_path}/oom.partial)" in err
    ), err
    calls["n"] = 100
    assert _run(out, *BASE, "resume=true") == 0 and (out / "output.png").exists()


def _disk_full_at(monkeypatch, nth: int):
    original = runs.save_file
    calls = {"n": 0}

    def writer(tensors, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] == nth:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)
        return original(tensors, filename, metadata=metadata)

    monkeypatch.setattr(runs, "save_file", writer)
    return calls


def test_disk_full_before_any_checkpoint_is_one_line_and_frees_the_folder(tmp_path, monkeypatch, capsys):
    _disk_full_at(monkeypatch, 1)
    out = tmp_path / "full"
    assert _run(out, *BASE) == 2
    err = _one_line_error(capsys)
    assert err == (
        f"semstyle: error: no space left on device while writing {tmp_path}/full.partial/"
        f"{runs.CHECKPOINT}; removed {tmp_path}/full.partial; free some space and run again"
    )
    assert not (tmp_path / "full.partial").exists()


def test_disk_full_after_a_checkpoint_keeps_it_and_resumes(tmp_path, monkeypatch, capsys):
    calls = _disk_full_at(monkeypatch, 2)
    out = tmp_path / "full"
    assert _run(out, *BASE) == 2
    err = _one_line_error(capsys)
    assert "no space left on device" in err and "the last checkpoint" in err and "resume=true continues" in err
    calls["n"] = 100
    assert _run(out, *BASE, "resume=true") == 0 and (out / "output.png").exists()
