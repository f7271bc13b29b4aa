#!/usr/bin/env bash
# Headless Chromium for the browser tests (the status view in tests/e2e/monitoring.rs, GraphiQL in
# gateway/tests/http.rs), and promtool for the alert rules' unit tests (tests/e2e/monitoring.rs),
# from Debian's packages. With CI=true those tests fail when the tool is missing, so CI installs
# them first.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# promtool comes with Debian's prometheus package; no server is started by installing it here.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing ${missing[*]} (Debian packages)..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
command -v chromium
command -v promtool
