#!/usr/bin/env bash
# The checks that need a GPU, prepared to run in one go when a GPU machine is lent (at most about 8 minutes on one GPU).
#
#   bash benchmarks/gpu_check.sh               # from anywhere; uses the GPUs it finds (torch.cuda.device_count())
#   bash benchmarks/gpu_check.sh --cpu-dry-run # the same steps on this CPU-only machine (tiny model, 2 gloo processes),
#                                              # to check the script itself before spending GPU time on it
#
# Each check is a shell function `check_<name>` run by `step <name> <seconds>` with its own time limit, its output in
# $OUT/<name>.log; add a check the same way (keep the total within 8 minutes on one GPU). One line per check is printed
# (ok / FAILED / skipped, with its seconds); the exit status is 1 if any check failed.
# Environment: PY (python with ntp_rl installed; default .venv/bin/python, else python), GPU_CHECK_OUT (logs and runs;
# default a new temporary folder), MODEL (default smollm2-135m: `make setup` converts it).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || command -v python )}
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
OUT=${GPU_CHECK_OUT:-$(mktemp -d -t gpu_check.XXXXXX)}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export ROOT PY OUT

if [ "${1:-}" = "--cpu-dry-run" ]; then
  export DRY=1 OMP_NUM_THREADS=1 NPROC=2 MODEL=${MODEL:-tiny-llama} WINDOW=32 BATCH=2 STEPS=4 TOL=1e-4
  export FSDP_CONFIG=configs/accelerate/fsdp_cpu.yaml ONE_CONFIG=configs/accelerate/cpu_ddp.yaml
else
  NPROC=$("$PY" -c "import torch; print(torch.cuda.device_count())") || { echo "error: $PY cannot import torch"; exit 2; }
  [ "$NPROC" -ge 1 ] || { echo "error: no CUDA GPU found (torch.cuda.device_count() = 0); use --cpu-dry-run to check the script"; exit 2; }
  # bf16: FSDP computes with bf16 parameter copies, the reference autocasts: the curves agree closely, not exactly (TOL is
  # a first estimate, to be confirmed by the first run on a GPU)
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} NPROC MODEL=${MODEL:-smollm2-135m} WINDOW=256 BATCH=4 STEPS=20 TOL=2e-2
  export DRY=0 FSDP_CONFIG=configs/accelerate/fsdp_8gpu.yaml ONE_CONFIG=configs/accelerate/single_gpu.yaml
fi
echo 'from ntp_rl.cli import ntp_rl_train; ntp_rl_train()' > "$OUT/train.py"
echo "gpu_check: $NPROC process(es), model $MODEL, logs in $OUT ($(date -u +%FT%TZ), $(git rev-parse --short HEAD 2>/dev/null))"

common() { echo "model.name_or_path=$MODEL data.corpus=verne data.window=$WINDOW lr=1e-4 warmup_steps=0 schedule=constant" \
                "max_steps=$STEPS save_every=$((STEPS / 2))"; }
# accelerate launch with a config file on N processes, a free port each time
launch() { local cfg=$1 n=$2; shift 2
  local port; port=$("$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  "$PY" -m accelerate.commands.launch --config_file "$cfg" --num_processes "$n" --main_process_port "$port" "$OUT/train.py" "$@"; }
# losses of two runs (folders) agree within TOL at every step both logged
compare() { "$PY" - "$1" "$2" "$TOL" <<'EOF'
import sys
from ntp_rl.trainer import read_metrics
a, b = ({r["step"]: r["loss"] for r in read_metrics(d) if "loss" in r} for d in sys.argv[1:3])
tol = float(sys.argv[3])
common = sorted(set(a) & set(b))
worst = max(abs(a[s] - b[s]) / max(1.0, abs(a[s])) for s in common)
print(f"{len(common)} steps compared, largest relative difference {worst:.2e} (tolerance {tol:g})")
assert len(common) >= 2 and worst <= tol, (a, b)
EOF
}
export -f common launch compare

check_fsdp() {  # FSDP2 on every GPU = one process on the same global batch; sharded checkpoint; model folder loads
  cd "$ROOT"
  launch "$ONE_CONFIG" 1 $(common) data.batch_size=$((BATCH * NPROC)) out_dir="$OUT/one" &&
  launch "$FSDP_CONFIG" "$NPROC" $(common) data.batch_size=$BATCH out_dir="$OUT/fsdp" &&
  compare "$OUT/one" "$OUT/fsdp" &&
  ls "$OUT"/fsdp/checkpoint-*/pytorch_model_fsdp_0/*.distcp > /dev/null &&
  "$PY" -c "
import math, sys; from ntp_rl.core import load_model, perplexity; from ntp_rl.trainer import latest_checkpoint
m, t = load_model(str(latest_checkpoint('$OUT/fsdp')/'model')); p = perplexity(m, t, 'The sea was calm that night.')
print(f'model folder loads on one process, perplexity {p:.1f}'); assert math.isfinite(p)"
}
check_fsdp_resume() {  # a sharded checkpoint resumes (same number of processes) to the uninterrupted curve
  cd "$ROOT"
  [ -d "$OUT/fsdp" ] || { echo "needs the fsdp check's run"; return 1; }
  launch "$FSDP_CONFIG" "$NPROC" $(common) max_steps=$((STEPS / 2)) data.batch_size=$BATCH out_dir="$OUT/cut" &&
  launch "$FSDP_CONFIG" "$NPROC" $(common) data.batch_size=$BATCH out_dir="$OUT/cut" resume=latest &&
  compare "$OUT/fsdp" "$OUT/cut"
}
check_deepspeed_zero2() {  # ZeRO-2 on every GPU = one process on the same global batch (deepspeed is not a requirement)
  cd "$ROOT"
  "$PY" -c "import deepspeed" 2> /dev/null || { echo "SKIP: deepspeed is not installed (pip install deepspeed)"; return 3; }
  launch configs/accelerate/deepspeed_zero2.yaml "$NPROC" $(common) data.batch_size=$BATCH out_dir="$OUT/zero2" &&
  compare "$OUT/one" "$OUT/zero2"
}
export -f check_fsdp check_fsdp_resume check_deepspeed_zero2

failed=0
step() { local name=$1 limit=$2 t0=$SECONDS rc
  if [ "$name" = deepspeed_zero2 ] && [ "$DRY" = 1 ]; then echo "skipped  $name (accelerate runs DeepSpeed on GPUs only)"; return; fi
  timeout "$limit" bash -c "check_$name" > "$OUT/$name.log" 2>&1; rc=$?
  case $rc in
    0) echo "ok       $name ($((SECONDS - t0)) s): $(tail -n 1 "$OUT/$name.log")" ;;
    3) echo "skipped  $name: $(tail -n 1 "$OUT/$name.log")" ;;
    124) echo "FAILED   $name: over its ${limit} s limit (log: $OUT/$name.log)"; failed=1 ;;
    *) echo "FAILED   $name ($((SECONDS - t0)) s, log: $OUT/$name.log):"; tail -n 5 "$OUT/$name.log" | sed 's/^/    /'; failed=1 ;;
  esac
}

step fsdp 200
step fsdp_resume 150
step deepspeed_zero2 120
echo "gpu_check: $([ $failed = 0 ] && echo all checks passed || echo some checks FAILED) in $SECONDS s"
exit $failed
