#!/usr/bin/env bash
# Headless Chromium for the browser tests (the status view in tests/monitoring.rs, GraphiQL in
# gateway/tests/http.rs), from Debian's packages. With CI=true those tests fail when Chromium is
# missing, so CI installs it first.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
echo "installing chromium (Debian package)..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
command -v chromium
