#!/usr/bin/env bash
# The GPU check a maintainer runs on a machine with a GPU, in at most 8 minutes:
#   1. the CUDA jax wheel matching the installed jax (skipped if jax already sees a GPU);
#   2. the tests marked `accelerator` (experiments/benchmarks/test_accelerator.py: a train step on the
#      GPU against the CPU, bfloat16 compute, data parallelism over every GPU present);
#   3. the train-loop benchmark on the GPU (MLP small and large, CNN, GPT; throughput, 3 rounds);
#   4. ONE markdown table of all of it on stdout (for the README), also in OUT_DIR/gpu_check.md.
#
#   bash experiments/benchmarks/gpu_check.sh [OUT_DIR]      (default: $OUT, else out/benchmark_gpu)
#
# Run it in the environment fnlearn is installed in (PYTHON=path/to/python to choose one); pip must
# reach a package index for step 1. Each step has its own time limit (120 + 120 + 210 s); a step
# that fails or runs out of time is a row of the table saying so, and the exit status is non-zero.
# Without a GPU it stops after step 1 with one line saying why.
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${1:-${OUT:-out/benchmark_gpu}}"
mkdir -p "$out"
python=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
status=0
log() { echo "gpu_check: $*" | tee -a "$out/log.txt" >&2; }
: >"$out/log.txt"

# 1. jax with CUDA
has_gpu() { "$python" -c 'import jax, sys; sys.exit(jax.default_backend() != "gpu")' 2>>"$out/log.txt"; }
if ! has_gpu && [ -z "${GPU_CHECK_NO_INSTALL:-}" ]; then  # GPU_CHECK_NO_INSTALL=1: a dry run, nothing installed
    version=$("$python" -c 'import jax; print(jax.__version__)')
    log "jax $version sees no GPU: installing jax[cuda12]==$version"
    timeout 120 "$python" -m pip install -q "jax[cuda12]==$version" >>"$out/log.txt" 2>&1 ||
        log "pip install jax[cuda12]==$version failed or timed out (see $out/log.txt)"
fi
if ! has_gpu; then
    log "no GPU: jax's backend is $("$python" -c 'import jax; print(jax.default_backend(), jax.devices())' 2>&1 | tail -1). Nothing else to check."
    exit 1
fi
"$python" -c 'import jax; print("jax", jax.__version__, "devices:", jax.devices())' | tee -a "$out/log.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null >"$out/gpus.txt" || true

# 2. the accelerator tests
timeout 120 "$python" -m pytest -q -m accelerator experiments/benchmarks/test_accelerator.py \
    -p no:cacheprovider --junitxml "$out/accelerator.xml" >"$out/accelerator.txt" 2>&1 || status=1
tail -n 3 "$out/accelerator.txt" >&2

# 3. the train-loop benchmark: fit (auto) against the hand-written jax + optax loops and flax (if
#    installed), so that four workloads fit in the time (COMPETITORS=... for others)
competitors=${COMPETITORS:-fnlearn fit,jax scan,jax jit loop,flax linen}
timeout 210 "$python" experiments/benchmarks/train_loop.py --device gpu --workload all --sections throughput \
    --repeats 3 --competitors "$competitors" --out "$out" >"$out/train_loop.txt" 2>&1 || status=1
tail -n 3 "$out/train_loop.txt" >&2

# 4. one table
"$python" - "$out" <<'PY' | tee "$out/gpu_check.md" || status=1
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path

out = Path(sys.argv[1])
import jax

gpus = (out / "gpus.txt").read_text().strip().replace("\n", "; ") if (out / "gpus.txt").exists() else ""
print(f"GPU check: {gpus or jax.devices()}; jax {jax.__version__}")
print()
print("| check | result | detail |")
print("|---|---|---|")
xml = out / "accelerator.xml"
if xml.exists():
    for case in ET.parse(xml).iter("testcase"):
        failed = case.find("failure") if case.find("failure") is not None else case.find("error")
        detail = (failed.get("message") or "").splitlines()[0][:120] if failed is not None else f"{float(case.get('time', 0)):.1f} s"
        print(f"| test {case.get('name')} | {'FAILED' if failed is not None else 'passed'} | {detail} |")
else:
    print("| accelerator tests | did not run | see accelerator.txt |")
bench = out / "train_loop.json"
if bench.exists():
    for name, entry in json.loads(bench.read_text())["workloads"].items():
        rows = {r["competitor"]: r for r in entry["rows"] if "missing" not in r}
        for competitor, r in rows.items():
            ratio = f", fit ÷ this {r['baseline_over_this']:.2f}" if competitor != "fnlearn fit" else ""
            print(f"| {name}: {competitor} | {r['steps_per_s']:.4g} steps/s | first call {r['first_call_s']:.2f} s{ratio} |")
        for r in entry["rows"]:
            if "missing" in r:
                print(f"| {name}: {r['competitor']} | not run | {r['missing']} |")
else:
    print("| train-loop benchmark | did not finish | see train_loop.txt |")
PY
exit $status
