#!/usr/bin/env bash
# The training-loop benchmark on a lent GPU, in a few minutes: every workload (small and large MLP,
# CNN, GPT), every competitor that is installed, 3 interleaved rounds, throughput only.
#   bash experiments/benchmarks/gpu_check.sh [OUT_DIR]      (default: $OUT, else out/benchmark_gpu)
# Needs jax with CUDA (and flax, equinox, torch for their rows) already installed on that machine:
# nothing is downloaded. Exits non-zero, saying why, if jax sees no GPU. Writes OUT_DIR/train_loop.{json,md,png}
# and OUT_DIR/log.txt; fit's driver choice is in the md ("fnlearn fit (auto) chose ...").
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-${OUT:-out/benchmark_gpu}}"
mkdir -p "$out"
python=${PYTHON:-python}
"$python" -c 'import jax; print("jax", jax.__version__, "devices:", jax.devices())' | tee "$out/log.txt"
nvidia-smi --query-gpu=name,memory.total,utilization.gpu --format=csv 2>/dev/null | tee -a "$out/log.txt" || true
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$python" experiments/benchmarks/train_loop.py --device gpu \
    --workload all --sections throughput --repeats 3 --out "$out" 2>&1 | tee -a "$out/log.txt"
