#!/usr/bin/env bash
# The CUDA paths, checked on the day a GPU is lent (no GPU has run this code before): bf16 autocast
# extraction, the GPU search backends, DDP + FSDP2 over NCCL on the GPUs present, a SpatialBoost
# stage-3 step at DINOv3-L size (random weights), and extraction throughput against the GPU's bf16
# peak (goal > 70%). Each check has its own time limit (about 6 minutes in all on one GPU); the rows
# for docs/benchmarks.md are written to $OUT/gpu-rows.md (default ./gpu-check-out).
# On a machine without a CUDA GPU it says so and exits 0.
#   usage: scripts/gpu-check.sh            (OUT=dir, PY=python, BENCH_GPU_BF16_TFLOPS=peak to override)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-gpu-check-out}

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu-check: no CUDA GPU here (torch.cuda.is_available() is False): nothing to check."
    exit 0
fi
mkdir -p "$OUT"
NGPU=$("$PY" -c 'import torch; print(torch.cuda.device_count())')
NAME=$("$PY" -c 'import torch; print(torch.cuda.get_device_name(0))')
TORCHV=$("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda)')
echo "gpu-check: $NGPU x $NAME (torch/cuda $TORCHV)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n "$NGPU"

ROWS="$OUT/gpu-rows.md"
{
    echo "<!-- scripts/gpu-check.sh on $(date -u +%Y-%m-%dT%H:%MZ): $NGPU x $NAME, torch/cuda $TORCHV -->"
    echo "| case | measured | target | note |"
    echo "|---|---|---|---|"
} > "$ROWS"
failed=0

run_check() {  # name, time limit (s), command...
    local name=$1 limit=$2
    shift 2
    local log="$OUT/$name.log" t0=$SECONDS
    echo "== $name (limit ${limit}s)"
    if timeout "$limit" "$@" > "$log" 2>&1; then status=ok; else status="FAILED (exit $?)"; failed=$((failed + 1)); fi
    local line
    line=$(grep '^{"check"' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        echo "$line" | "$PY" -c 'import json, sys; r = json.load(sys.stdin); print(r["row"])' >> "$ROWS"
    else
        echo "| $name | $status | - | see $log |" >> "$ROWS"
    fi
    echo "   $status in $((SECONDS - t0))s: $(tail -n 1 "$log")"
}

run_check autocast 60 "$PY" -m bench.perf.gpu_check autocast
run_check search 90 "$PY" -m bench.perf.gpu_check search
run_check dist 90 "$PY" -m torch.distributed.run --standalone --nproc_per_node="$NGPU" -m bench.perf.gpu_check dist
run_check stage3 90 "$PY" -m bench.perf.gpu_check stage3
run_check throughput 90 "$PY" -m bench.perf.gpu_check throughput

echo
echo "rows for docs/benchmarks.md ($ROWS):"
cat "$ROWS"
echo
echo "gpu-check: $failed check(s) failed (logs in $OUT/)"
exit "$failed"
