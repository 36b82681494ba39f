#!/usr/bin/env bash
# Install Debian's Chromium for the leaderboard's headless-browser test, only when it is missing.
# The test drives Chromium itself over the DevTools pipe (--remote-debugging-pipe), so no
# chromedriver and no Python package is needed. Safe to call on every CI run.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "chromium already installed: $(chromium --version 2>/dev/null || echo unknown version)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium
echo "installed: $(chromium --version)"
