#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with torch, this package, the web page's
# extra and the test tools. An existing torch is kept; with none, the CPU build torch==2.13.0 is
# installed first so that no dependency pulls a multi-GB CUDA build. The web page's browser test
# drives Debian's chromium and chromium-driver: installed here when missing and apt-get can
# (as root), otherwise that one test is skipped and says why.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/python -m pip install -q "torch==${UNLEARNABLE_TORCH_VERSION:-2.13.0}"
fi
.venv/bin/python -m pip install -q -e ".[test,app]" 2>&1 | grep -v "^WARNING: Location" || true
if ! command -v chromedriver >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; }; } \
        || echo "note: apt-get could not install chromium chromium-driver; the browser test will be skipped"
fi
.venv/bin/python -c "import unlearnable, torch; print(f'unlearnable {unlearnable.__version__}, torch {torch.__version__}')"
