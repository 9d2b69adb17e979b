#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with torch, this package and its test tools.
# An existing torch is kept; with none, the CPU build torch==2.13.0 is installed first so that
# no dependency pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/python -m pip install -q "torch==${UNLEARNABLE_TORCH_VERSION:-2.13.0}"
fi
.venv/bin/python -m pip install -q -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import unlearnable, torch; print(f'unlearnable {unlearnable.__version__}, torch {torch.__version__}')"
