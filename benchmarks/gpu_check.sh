#!/usr/bin/env bash
# GPU check: the CUDA tests, the layer and network benchmarks on the GPU in a short
# configuration (the network one with and without the dense training layout), the layers of the
# designs slowest against masked dense, where a proxy trial's time goes (with and without the
# layout), the first-call cost of grouped convolutions,
# a 3-trial search and a 9-candidate search with successive halving, in about 8 minutes
# at most (4 to 5 minutes on an H100); one table at the end.
# Run from anywhere: bash benchmarks/gpu_check.sh [DEVICE]. DEVICE defaults to cuda;
# `bash benchmarks/gpu_check.sh cpu` runs the same steps on the CPU to check the script itself.
# Logs and the study go to $OUT (a fresh temporary folder when OUT is unset). Exits 1 where
# DEVICE is cuda and there is no CUDA device, and non-zero when a step fails.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"

DEVICE="${1:-cuda}"
PY="${PYTHON:-python3}"  # the interpreter that holds torch
if [ "$DEVICE" = cuda ] && ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing run" >&2
    exit 1
fi
"$PY" -c 'import torch; print("device:", torch.cuda.get_device_name() if torch.cuda.is_available()
      else "cpu", "| torch", torch.__version__)'

rows=()
failed=0
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    echo "== $name (limit ${limit}s): $*"
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    tail -n 40 "$OUT/$name.log"
    local status=ok
    [ $rc -eq 124 ] && status="TIMED OUT" || { [ $rc -ne 0 ] && status="FAILED (rc $rc)"; }
    [ "$status" = ok ] || failed=1
    rows+=("$(printf '%-14s %-16s %6ss  %s' "$name" "$status" "$((SECONDS - start))" "$OUT/$name.log")")
}

# -o addopts: one process (the GPU is one device), and no need for pytest-xdist there
step cuda-tests 120 "$PY" -m pytest -o addopts=-ra tests/test_cuda.py tests/test_layer.py \
    tests/test_layout.py -q \
    -p no:cacheprovider
step layer-speed 60 "$PY" benchmarks/layer_speed.py --quick --device "$DEVICE" --repeats 5 --markdown \
    --budget 1
# Training steps as CUDA graphs, as training runs on a GPU (20 sampled designs per space, as the
# CPU table; column ssc/cmp: the dense training layout against compact training, side by side),
# then the same networks' eager steps (5 designs, no memory step).
step network-speed 240 "$PY" benchmarks/network_speed.py --device "$DEVICE" --designs 20 \
    --markdown --repeats 5 --compact --out "$OUT/network_speed.csv"
step network-eager 90 "$PY" benchmarks/network_speed.py --device "$DEVICE" --designs 5 \
    --repeats 5 --no-memory --no-cuda-graphs
# Where the dense-weight path's time goes against masked dense, what CUDA graphs give, and
# whether the dense training layout costs what masked dense costs (profiles of the dense network).
step dense-weight 120 "$PY" benchmarks/dense_weight_paths.py --device "$DEVICE" --designs 3 \
    --repeats 5 --profile-rows 12
# Layer by layer, as CUDA graphs: which layers of the designs slowest against masked dense in
# the sixth run (and of the dense design, where both run one convolution) cost the difference.
step design-layers 90 "$PY" benchmarks/design_layers.py --device "$DEVICE" \
    --design "ssc-uniform w3" --design "sample 10 w3" --design "standard w1"
step trial-phases 90 "$PY" benchmarks/trial_phases.py --device "$DEVICE" --designs 3
# The same trials without the dense training layout (every step places the stored weights);
# CUDA only: the first-call cost of grouped convolutions per memory format.
step trial-compact 90 "$PY" benchmarks/trial_phases.py --device "$DEVICE" --designs 3 \
    --no-dense-layout
if [ "$DEVICE" = cuda ]; then
    step first-calls 60 "$PY" benchmarks/cuda_first_calls.py
fi
db="$(mktemp -d)/gpu.db"
step search 120 "$PY" -m ssc_nas search --budget 0.5M --trials 3 --epochs 2 --device "$DEVICE" \
    --strategy full --sampler random --quiet --study gpu-check --storage "sqlite:///$db"
# Successive halving: checkpoints saved on the device and continued from (9 candidates, 3 rungs).
step search-sh 120 "$PY" -m ssc_nas search --budget 0.5M --trials 9 --epochs 2 \
    --device "$DEVICE" --sampler random --strategy sh --no-reference-designs --quiet \
    --study gpu-check-sh --storage "sqlite:///$db"

echo
echo "gpu_check summary (logs in $OUT):"
printf '%-14s %-16s %7s  %s\n' step status time log
printf '%s\n' "${rows[@]}"
for log in network-speed network-eager; do
    echo "$log:"
    grep -h "median speed-up\|worst vs\|beyond noise\|ssc / compact" "$OUT/$log.log" 2>/dev/null
done
grep -h "median over designs" "$OUT/dense-weight.log" 2>/dev/null
exit $failed
