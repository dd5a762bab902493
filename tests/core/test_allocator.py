"""keep_freed_memory: freed 64 MB blocks are reused without page faults, and the user's glibc settings win."""

import os
import subprocess
import sys

import pytest

import semstyle.core.encoder as encoder_module
from semstyle.core.allocator import keep_freed_memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux only")

# Page faults in the best of three rounds of a step-like pattern (three 64 MB tensors of 16 384 pages of 4 KiB each
# made and freed), once the pattern has run a few times. Freed blocks are not always reused at once (an aligned
# request is a few bytes larger than the block it freed, and small live objects split the heap), so a round may
# fault once; with glibc's default every round faults about 49 000 times.
PROBE = """
import resource
import torch

def round():
    a = torch.ones(16 * 2**20)
    b = a * 2
    (a + b).sum()

for _ in range(3):
    round()
counts = []
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    round()
    counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
faults = min(counts)
"""


def test_freed_blocks_are_reused_without_page_faults():
    assert keep_freed_memory()  # process-wide: later tests in this process run with it, as semstyle's runs do
    scope = {}
    exec(PROBE, scope)
    assert scope["faults"] < 12_000, f"{scope['faults']} page faults in the best round, re-allocating freed 64 MB"


def test_it_can_be_turned_off():
    code = "import semstyle.core.allocator as a; print(a.keep_freed_memory())\n" + PROBE + "print(faults)"
    env = {**os.environ, "SEMSTYLE_KEEP_FREED_MEMORY": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    kept, faults = out.stdout.split()
    assert kept == "False"
    assert int(faults) > 40_000  # glibc's default hands each block back to the kernel: the probe above can fail


@pytest.mark.parametrize(
    "env",
    [{"MALLOC_MMAP_THRESHOLD_": "1000000"}, {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"}],
    ids=["malloc-variable", "tunable"],
)
def test_the_users_glibc_settings_are_left_alone(env, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert keep_freed_memory.__wrapped__() is False  # decided before mallopt is called


def test_building_a_cpu_encoder_keeps_freed_memory(monkeypatch):
    calls = []
    monkeypatch.setattr(encoder_module, "keep_freed_memory", lambda: calls.append(1))
    encoder_module.VGG19Encoder("avg", "fp32", "cpu")
    assert calls == [1]


def test_a_cpu_stylizer_keeps_freed_memory(monkeypatch):
    import semstyle.feedforward.stylize as stylize_module
    from semstyle.conf.vocab import SHIPPED_MODELS

    calls = []
    monkeypatch.setattr(stylize_module, "keep_freed_memory", lambda: calls.append(1))
    stylize_module.Stylizer(next(iter(SHIPPED_MODELS)), device="cpu", precision="fp32")
    assert calls == [1]
