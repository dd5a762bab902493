#!/usr/bin/env bash
# Everything a lent GPU machine is used for, in one call with one deadline (issue 17 item 7, issue 19):
#   1. the benchmark suite on the GPU (benchmarks/bench_gpu.py, bench_step.py, bench_feedforward.py speed);
#   2. the tests of the methods, losses, geometry and feed-forward code with the device left at `auto` (= cuda);
#   3. the Multimodal network trained at the paper's 256/512/1024 until the deadline, stopped like Ctrl-C and
#      finished from its last checkpoint.
# Usage (from the repository root, on the GPU machine): OUT=dir [DEADLINE=seconds] [TRAIN=0] bash benchmarks/gpu_suite.sh
# (DEVICE, SIZE, SCALES, WIDTH, BATCH, BENCH_JOBS and TESTS change the device, the training sizes and what runs, to
# try the script on a CPU at small sizes.) What comes back: summary.md, errors.log, pytest_cuda.log and the training
# job's files in parts of one tar (benchmarks/gpu_train.sh: cat train.tar.part* | tar x).
# Python packages the machine lacks travel in .whl/ and .gpu/site/ (benchmarks/gpu_env.sh); the Renoir doodle set in
# .gpu/data/doodle/renoir. Both folders are git-ignored (.git/info/exclude) and carried. On an unknown machine
# BENCH_OVERRIDES (e.g. "size=64 steps=3") and STEP_SIZES shrink the benchmarks.
set -u
START=$SECONDS
DEADLINE=${DEADLINE:-480}
left() { echo $((DEADLINE - (SECONDS - START))); }
cap() { local want=$1 rest; rest=$(left); echo $((want < rest ? want : rest)); }

# shellcheck source=benchmarks/gpu_env.sh
source benchmarks/gpu_env.sh || exit 1
DEVICE=${DEVICE:-cuda}
SUMMARY=$OUT/summary.md ERRORS=$OUT/errors.log
{
    nvidia-smi -L
    python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"
} >"$SUMMARY" 2>>"$ERRORS"
# shellcheck disable=SC2086  # BENCH_JOBS is a list of words
timeout "$(cap 170)" python3 benchmarks/bench_gpu.py --device "$DEVICE" --shared .gpu/data \
    --jobs ${BENCH_JOBS:-gatys500 demo doodle dst_gram dst_strotss} --overrides ${BENCH_OVERRIDES:-} \
    >>"$SUMMARY" 2>>"$ERRORS"
timeout "$(cap 45)" python3 benchmarks/bench_step.py --device "$DEVICE" --sizes ${STEP_SIZES:-256 512 1024} --repeats 10 \
    >>"$SUMMARY" 2>>"$ERRORS"
timeout "$(cap 30)" python3 benchmarks/bench_feedforward.py speed --device "$DEVICE" --sizes 512 1024 --repeats 10 \
    >>"$SUMMARY" 2>>"$ERRORS"
cat "$SUMMARY"

# shellcheck disable=SC2086  # TESTS is a list of paths
timeout "$(cap 100)" python3 -m pytest -q -n 8 -p no:cacheprovider --timeout 90 -rf \
    ${TESTS:-tests/methods tests/losses tests/geometry tests/feedforward} >"$OUT/pytest_cuda.log" 2>&1
tail -25 "$OUT/pytest_cuda.log"

[ "${TRAIN:-1}" = 1 ] || exit 0
DEADLINE=$(left) bash benchmarks/gpu_train.sh \
    "multimodal1024 configs/feedforward/multimodal.yaml size=${SIZE:-1024} scales=${SCALES:-[256,512]} width=${WIDTH:-32} batch_size=${BATCH:-4} steps=1000000 device=$DEVICE"
echo "done in $((SECONDS - START)) s"
