#!/usr/bin/env bash
# One GPU check in under 8 minutes on one modern GPU, one table at the end (steps: bench/gpu_check.py).
#   bash bench/gpu-check.sh             # on a GPU machine; CIFAR-10 from UNLEARNABLE_DATA (or add --download)
#   bash bench/gpu-check.sh --dry       # tiny sizes on the CPU: checks the script before a GPU is lent
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
exec "$PY" bench/gpu_check.py "$@"
