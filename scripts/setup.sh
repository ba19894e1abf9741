#!/usr/bin/env bash
# Set up the project in ./.venv (idempotent): torch + torchvision as a matched PyPI pair, the
# package with its seg/test extras, and the Mesa libraries MuJoCo needs to render offscreen.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "Python >= 3.11 is required (found $("$PYTHON" --version))" >&2; exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip
# A matched pair from PyPI (runs on the CPU; uses CUDA when a GPU is present).
$PIP install -q "torch==2.14.1" "torchvision==0.29.2"
$PIP install -q -e ".[seg,test,robot]"

# Offscreen OpenGL for MuJoCo: EGL (Mesa) preferred, OSMesa as the fallback.
if ! ldconfig -p 2>/dev/null | grep -qE 'libEGL\.so\.1|libOSMesa\.so'; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libegl-mesa0 libgl1 libosmesa6 >/dev/null
  else
    echo "warning: no EGL/OSMesa library found; install Mesa (libegl1 libegl-mesa0 or libosmesa6) to render the synthetic scenes" >&2
  fi
fi
# Headless Chromium for the leaderboard browser test (Debian packages; skipped with a warning if impossible).
bash scripts/setup-browser.sh >/dev/null || echo "warning: chromium could not be installed; the browser test will skip" >&2
echo "setup done: $(.venv/bin/python -c 'import torch, torchvision; print(f"torch {torch.__version__}, torchvision {torchvision.__version__}")')"
