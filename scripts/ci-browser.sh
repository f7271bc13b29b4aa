#!/usr/bin/env bash
# Headless Chromium for the status view's browser test (tests/monitoring.rs), from Debian's
# packages. With CI=true that test fails when Chromium is missing, so CI installs it first.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
echo "installing chromium (Debian package)..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
command -v chromium
