#!/usr/bin/env bash
# The GPU check: on a machine with a CUDA device, from the repository root, in under 10 minutes:
#   bash benchmarks/gpu_check.sh
# installs the test environment (make setup-test), runs the GPU tests (pytest -m gpu: the real pipeline on
# CUDA against the CPU) and the GPU benchmark (benchmarks/results/gpu.json), and prints a summary.
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
make setup-test >/tmp/gpu_check_setup.log 2>&1 || { echo "gpu_check: setup failed (see /tmp/gpu_check_setup.log)"; exit 1; }
PY=.venv/bin/python
if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: torch sees no CUDA device here; nothing to check"
    exit 1
fi
$PY -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| CUDA', torch.version.cuda)"
$PY -m pytest -m gpu -q -p no:cacheprovider -rs 2>&1 | tee /tmp/gpu_check_tests.log | tail -25
tests=${PIPESTATUS[0]}
timeout 300 $PY -m benchmarks.bench_gpu --steps 200 --ref-steps 40 2>&1 | tee /tmp/gpu_check_bench.log | tail -40
bench=${PIPESTATUS[0]}
echo "== gpu_check summary"
echo "tests: $(tail -1 /tmp/gpu_check_tests.log) (exit $tests)"
echo "benchmark: exit $bench; results in benchmarks/results/gpu.json"
echo "seconds: $(( $(date +%s) - start ))"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
