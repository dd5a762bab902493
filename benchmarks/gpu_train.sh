#!/usr/bin/env bash
# Feed-forward models trained side by side on one lent GPU until one deadline (issue 19): each job runs
# `semstyle train` until its own `steps` or the deadline, is then stopped like Ctrl-C (SIGINT) and finished from its
# last checkpoint, so that every job returns a model file however far it got.
# Usage (from the repository root, on the GPU machine; benchmarks/gpu_env.sh makes the packages importable):
#   OUT=dir [DEADLINE=seconds] bash benchmarks/gpu_train.sh 'NAME CONFIG [override ...]' ...
# e.g. 'johnson512 configs/feedforward/johnson.yaml width=32 batch_size=4 device=cuda'. Per job NAME, these are
# kept: NAME.log, NAME.training.json, NAME.losses.csv, NAME.sample.png (the last validation sample) and
# NAME.safetensors, packed into one tar in parts of 15 MB, because the device tool returns 8 files of 16 MB at most:
# cat train.tar.part* | tar x.
# The jobs share the GPU; OMP_NUM_THREADS (default 4) is each one's CPU threads.
set -u
START=$SECONDS
DEADLINE=${DEADLINE:-480}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
ROOT=/tmp/train
KEEP=$ROOT/keep
# shellcheck source=benchmarks/gpu_env.sh
source benchmarks/gpu_env.sh || exit 1
rm -rf "$ROOT" && mkdir -p "$KEEP"

train_until() {  # NAME SECONDS CONFIG [override ...]
    local name=$1 seconds=$2 run=$ROOT/$1
    shift 2
    timeout -s INT "$seconds" python3 -m semstyle train "$@" checkpoint_every=50 sample_every=100000 progress=false \
        out_dir="$run" >"$KEEP/$name.log" 2>&1
    if [ ! -d "$run" ] && [ -f "$run.partial/checkpoint.safetensors" ]; then  # stopped by the deadline: finish
        local step
        step=$(python3 -c "from safetensors import safe_open; print(safe_open('$run.partial/checkpoint.safetensors', 'pt').metadata()['step'])")
        python3 -m semstyle train "$run.partial/config.yaml" resume=true steps="$step" progress=false >>"$KEEP/$name.log" 2>&1
    fi
    if [ -f "$run/model.safetensors" ]; then
        cp "$run/model.safetensors" "$KEEP/$name.safetensors"
        cp "$run/training.json" "$KEEP/$name.training.json"
        cp "$run/losses.csv" "$KEEP/$name.losses.csv"
        cp "$(find "$run/samples" -name 'step_*.png' | sort | tail -1)" "$KEEP/$name.sample.png"
    fi
    echo "$name: $(tail -1 "$KEEP/$name.log")"
}

SECONDS_LEFT=$((DEADLINE - (SECONDS - START) - 50))  # 50 s to finish the runs and copy their files
[ "$SECONDS_LEFT" -gt 30 ] || { echo "gpu_train: no time left ($SECONDS_LEFT s)"; exit 1; }
for job in "$@"; do
    read -r name config overrides <<<"$job"
    # shellcheck disable=SC2086  # overrides are words
    train_until "$name" "$SECONDS_LEFT" "$config" $overrides &
done
wait
tar cf - -C "$KEEP" . | split -b 15M - "$OUT/train.tar.part"
echo "gpu_train: done in $((SECONDS - START)) s"
