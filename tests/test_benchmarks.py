"""Every benchmark script still loads and builds its command line: the scripts are not imported by the package, so
a rename inside semstyle would otherwise break them unnoticed (three had, until this test)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

# One process for all scripts (torch loads once); each script's main() runs with --help, which imports what the
# script needs and builds its argument parser, then exits 0 before any work.
CHECK = """
import contextlib, importlib.util, io, sys
sys.path.insert(0, {folder!r})
failed = []
for path in {paths!r}:
    name = path.rsplit("/", 1)[1]
    try:
        spec = importlib.util.spec_from_file_location("bench_" + name[:-3], path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.argv = [path, "--help"]
        with contextlib.redirect_stdout(io.StringIO()):
            module.main()
        failed.append(name + ": --help did not exit")
    except SystemExit as done:
        if done.code not in (0, None):
            failed.append(f"{{name}}: --help exited {{done.code}}")
    except Exception as error:
        failed.append(f"{{name}}: {{type(error).__name__}}: {{error}}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_benchmark_script_loads_and_parses_help():
    paths = sorted(str(p) for p in BENCHMARKS.glob("*.py") if p.name != "common.py")
    assert len(paths) > 20
    done = subprocess.run(
        [sys.executable, "-c", CHECK.format(folder=str(BENCHMARKS), paths=paths)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
