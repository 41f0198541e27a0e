#!/usr/bin/env bash
# One prepared GPU measurement (under 8 minutes on one H100/H200): throughput of a hand-written
# loop vs fspladder's stage 2 and stage 1, and the FSP micro-benchmarks, on CUDA.
#   benchmarks/gpu.sh             # on a machine with a GPU; results land in results/
#   benchmarks/gpu.sh --dry-run   # a few steps on the CPU, to check the script itself
# PYTHON (default python3) and RESULTS (default results) may be set in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
results=${RESULTS:-results}
if [ "${1:-}" = "--dry-run" ]; then
  $py benchmarks/throughput.py --device cpu --dry-run --out "$results"
  $py -c "from fspladder.micro import run_micro; run_micro('$results/micro-dry', device='cpu')" | tail -3
  exit 0
fi
$py -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
timeout 300 $py benchmarks/throughput.py --device cuda --steps 200 --repeats 3 --batch 512 --out "$results"
timeout 120 $py -c "from fspladder.micro import run_micro; run_micro('$results/micro-cuda', device='cuda')"
