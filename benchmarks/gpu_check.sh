#!/usr/bin/env bash
# GPU check: the CUDA tests, the layer and network benchmarks on the GPU in a short
# configuration, and a 3-trial search, in about 8 minutes; one table at the end.
# Run from anywhere: bash benchmarks/gpu_check.sh. Logs and the study go to $OUT (a fresh
# temporary folder when OUT is unset). Exits 1 where there is no CUDA device, and non-zero
# when a step fails.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"

if ! python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing run" >&2
    exit 1
fi
python -c 'import torch; print("GPU:", torch.cuda.get_device_name(), "| torch", torch.__version__)'

rows=()
failed=0
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    echo "== $name (limit ${limit}s): $*"
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    tail -n 25 "$OUT/$name.log"
    local status=ok
    [ $rc -eq 124 ] && status="TIMED OUT" || { [ $rc -ne 0 ] && status="FAILED (rc $rc)"; }
    [ "$status" = ok ] || failed=1
    rows+=("$(printf '%-14s %-16s %6ss  %s' "$name" "$status" "$((SECONDS - start))" "$OUT/$name.log")")
}

step cuda-tests 120 python -m pytest tests/test_cuda.py tests/test_layer.py -q -p no:cacheprovider
step layer-speed 75 python benchmarks/layer_speed.py --quick --device cuda --repeats 5 \
    --budget 1
step network-speed 120 python benchmarks/network_speed.py --device cuda --designs 5 \
    --repeats 5 --out "$OUT/network_speed.csv"
rm -f "$OUT/gpu.db"
step search 150 python -m ssc_nas search --budget 0.5M --trials 3 --epochs 2 --device cuda \
    --sampler random --quiet --study gpu-check --storage "sqlite:///$OUT/gpu.db"

echo
echo "gpu_check summary (logs in $OUT):"
printf '%-14s %-16s %7s  %s\n' step status time log
printf '%s\n' "${rows[@]}"
grep -h "median speed-up\|worst vs" "$OUT/network-speed.log" 2>/dev/null
exit $failed
