#!/usr/bin/env bash
# Headless Chromium for the leaderboard browser test (Debian packages; idempotent, needs root).
# The test drives the browser over the DevTools protocol with the standard library, so no Python
# package and no downloaded browser build are needed.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  echo "chromium already installed: $(chromium --version 2>/dev/null || echo chromium)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "apt-get not found: install Chromium (package 'chromium' + 'chromium-driver') with your package manager" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "root is needed to install chromium (run: apt-get update && apt-get install -y chromium chromium-driver)" >&2
    exit 1
  fi
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
echo "chromium installed: $(chromium --version 2>/dev/null || echo chromium)"
