#!/usr/bin/env bash
# One lent-GPU session in a single call (maintainers; the device tool of this workplace):
#   1. install the carried wheels (.whl/: this package's wheel, gymnasium, mujoco, ale-py; the image has torch),
#   2. time the CUDA path clean (benchmarks/throughput.py --device cuda),
#   3. train zoo runs in the background (seed 0, the paper's config) while tests/test_fast.py checks the CUDA path
#      against the plain one,
#   4. at DEADLINE_S seconds after the start, stop the runs with SIGTERM and pack their run folders (no
#      checkpoints: see KEEP_CHECKPOINTS below) into $OUT/runs.tar.gz.part-* (16 MB pieces).
# A second call on the still-warm machine continues a run: SKIP_INSTALL=1 SKIP_BENCH=1 SKIP_TESTS=1
#   RUN_SPECS="halfcheetah|HalfCheetah-v4|--resume" (the run folders in /tmp/runs survive while the machine is held).
# Run as: DEADLINE_S=500 bash studies/gpu_session.sh   (carry .whl; a run that dies on the fast path is retried
# once with --no-fast). The zoo entry is then built here from the returned run folder (tools/zoo_add.py).
# Build .whl here first: this package's wheel (`pip wheel --no-deps . -w .whl` from a copy of the checkout without
# the zoo's weights and videos: with them it is 80 MB, over what a call carries) and, for Python 3.12
# manylinux, gymnasium, farama-notifications, mujoco, glfw, pyopengl, websockets and ale-py (see the device
# tool's README); the image brings torch, numpy, opencv, typer, safetensors, huggingface_hub and onnxruntime.
# DMC needs dm_control (a 56 MB wheel), which does not fit one call beside mujoco: carry [".whl"] in a first call
# (with RUN_SPECS="" DEADLINE_S=30 SKIP_BENCH=1 SKIP_TESTS=1: install only, and see what imports), then
# [".whl-dmc"] (dm_control, dm-env, dm-tree, labmaze, absl-py) and, if scipy is missing, [".whl-scipy"], each
# within 30 s of the last so the machine stays held; the last call trains. Build them with `pip download --no-deps
# --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 -d .whl-dmc dm_control==1.0.50 ...`.
# The call copies the tracked tree, which the zoo's weights push over the 64 MiB a call carries: untrack them for
# the call (`git rm -q --cached` the zoo's .safetensors/.onnx/.mp4 files and list them in .git/info/exclude),
# then restore (`git reset -q HEAD -- zoo`, and the exclude file) before committing anything.
# Measured 2026-11-26 on an H200: three runs sharing the GPU went 2-3x slower each than one alone; run one.
# An Atari entry must train its 100k steps within one call (its replay buffer cannot come back): read the Atari rows
# of throughput.txt first (100k steps in 10 minutes is about 170 env-steps/s), then, on the warm machine,
#   SKIP_INSTALL=1 SKIP_BENCH=1 SKIP_TESTS=1 DEADLINE_S=590 RUN_SPECS="boxing|ALE/Boxing-v5|--steps 100000" bash ...
# One HalfCheetah-v4 run alone: 100k steps (20 evaluations included) in 489 s.
set -u
T0=$(date +%s)
DEADLINE_S=${DEADLINE_S:-500}
OUT=${OUT:-/tmp/out}
RUNS=/tmp/runs
REPO=$(pwd)
elapsed() { echo $(( $(date +%s) - T0 )); }
say() { echo "[$(elapsed)s] $*" | tee -a "$OUT/session.txt"; }

DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT" "$RUNS"
if [ -z "${SKIP_INSTALL:-}" ]; then
  # Every carried wheel folder (.whl, .whl-dmc, .whl-scipy, ...) not installed by an earlier call on this machine.
  for dir in .whl .whl-*; do
    [ -d "$dir" ] && [ ! -e "/tmp/site/.installed$dir" ] || continue
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      "$dir"/*.whl || { echo "wheel install from $dir failed"; exit 1; }
    touch "/tmp/site/.installed$dir"; echo "installed $dir"
  done
fi
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH  # also on a warm machine's second call
export PYTHONUNBUFFERED=1
say "installed"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv | tee -a "$OUT/session.txt"
(cd /tmp && python3 -c "import sys, torch, mrq_agents; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name(), mrq_agents.__version__)") 2>&1 | tee -a "$OUT/session.txt"
for module in gymnasium mujoco ale_py scipy lxml dm_control; do  # what the envs need, and what is still missing
  (cd /tmp && python3 -c "import $module" 2>/dev/null) && echo -n "$module ok | " || echo -n "$module MISSING | "
done | tee -a "$OUT/session.txt"; echo | tee -a "$OUT/session.txt"

# 2. Throughput on a GPU nothing else uses.
[ -z "${SKIP_BENCH:-}" ] && {
say "throughput fp32 (plain, fast)"
(cd /tmp && timeout 110 python3 "$REPO/benchmarks/throughput.py" --device cuda --envs HalfCheetah-v4 ALE/Pong-v5 \
  --paths plain fast --precisions fp32) 2>&1 | tee "$OUT/throughput.txt"
say "throughput bf16 (fast)"
(cd /tmp && timeout 90 python3 "$REPO/benchmarks/throughput.py" --device cuda --envs HalfCheetah-v4 ALE/Pong-v5 \
  --paths fast --precisions bf16) 2>&1 | tee -a "$OUT/throughput.txt"
}

# 3. Zoo runs: name|env|extra arguments.
RUN_SPECS=${RUN_SPECS-"walker2d|Walker2d-v4|--steps 100000"}  # empty: install and check only
declare -A PID ARGS ENVID RETRIED
launch() {  # name env args...
  # Started from this shell (no setsid: under job control setsid forks, and $! would name the wrong process).
  local name=$1 env=$2; shift 2
  (cd /tmp && exec nohup mrq train "$env" --seed 0 --device "$DEVICE" --out "$RUNS/$name" "$@" \
    >> "$RUNS/$name.log" 2>&1) &
  PID[$name]=$!
  say "launched $name: mrq train $env --seed 0 --device $DEVICE $* (pid ${PID[$name]})"
}
IFS=';' read -ra SPECS <<< "$RUN_SPECS"
for spec in "${SPECS[@]}"; do
  IFS='|' read -r name env args <<< "$spec"
  ENVID[$name]=$env; ARGS[$name]=$args; RETRIED[$name]=0
  # shellcheck disable=SC2086
  launch "$name" "$env" $args
done

say "tests/test_fast.py (CPU and CUDA cases; the runs share the GPU)"
[ -z "${SKIP_TESTS:-}" ] && (cd /tmp && timeout 200 python3 -m pytest "$REPO/tests/test_fast.py" -q -p no:cacheprovider -rs) 2>&1 \
  | tee "$OUT/test_fast.txt" | tail -15

# 4. Watch the runs until the deadline; a run that failed is retried once on the plain path.
while [ "$(elapsed)" -lt $((DEADLINE_S - 25)) ]; do
  for name in "${!PID[@]}"; do
    if ! kill -0 "${PID[$name]}" 2>/dev/null && [ "${RETRIED[$name]}" = 0 ] \
        && grep -qi "error\|Traceback" "$RUNS/$name.log"; then
      say "$name stopped with an error; retrying with --no-fast"; tail -5 "$RUNS/$name.log"
      RETRIED[$name]=1
      # shellcheck disable=SC2086
      launch "$name" "${ENVID[$name]}" ${ARGS[$name]} --no-fast --overwrite
    fi
  done
  say "$(for n in "${!PID[@]}"; do echo -n "$n: $(grep -c . "$RUNS/$n/metrics.csv" 2>/dev/null) rows, last $(tail -1 "$RUNS/$n/metrics.csv" 2>/dev/null | cut -d, -f1-5) | "; done)"
  sleep 20
done

say "deadline: SIGTERM to the runs"
for name in "${!PID[@]}"; do kill -TERM "${PID[$name]}" 2>/dev/null; done
for _ in $(seq 15); do
  alive=0; for name in "${!PID[@]}"; do kill -0 "${PID[$name]}" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break; sleep 1
done
for name in "${!PID[@]}"; do kill -KILL "${PID[$name]}" 2>/dev/null; done
for name in "${!PID[@]}"; do echo "== $name"; tail -4 "$RUNS/$name.log"; done | tee -a "$OUT/session.txt"
(cd "$RUNS" && tar --exclude='checkpoint.safetensors' --exclude='*.tmp' -cf - . | gzip -1 \
  | split -b 16000000 - "$OUT/runs.tar.gz.part-")
# KEEP_CHECKPOINTS=1 also brings back each run's checkpoint.safetensors (about 70 MB at 100k steps), so the run can
# be resumed elsewhere (a CUDA checkpoint resumes on the CPU with --device cpu). One call brings back about 64 MiB
# in all (measured 2026-11-26: the fifth 16 MB piece was left out), so the checkpoint is cut into 15 MB pieces under
# /tmp/ckpt, the first three come back now, and a second call on the warm machine fetches the rest:
#   cp /tmp/ckpt/*.part-a[d-z] $OUT/     then here: cat the pieces in order, and check the .sha256.
if [ -n "${KEEP_CHECKPOINTS:-}" ]; then
  mkdir -p /tmp/ckpt
  for name in "${!PID[@]}"; do
    ck="$RUNS/$name/checkpoint.safetensors"; [ -f "$ck" ] || continue
    (cd "$RUNS/$name" && sha256sum checkpoint.safetensors > "$OUT/$name.ckpt.sha256")
    split -b 15000000 "$ck" "/tmp/ckpt/$name.part-"
  done
  ls /tmp/ckpt/*.part-* | head -3 | xargs -r cp -t "$OUT"
  say "checkpoint pieces: $(ls /tmp/ckpt | tr '\n' ' ')(fetch the ones not in \$OUT with a second call)"
fi
ls -la "$OUT"
say "done"
