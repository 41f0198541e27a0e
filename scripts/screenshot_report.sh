#!/usr/bin/env bash
# Render a run's report.html in headless Chromium and save a PNG screenshot beside it.
#   scripts/screenshot_report.sh runs/default            -> runs/default/report-screenshot.png
# Needs Debian's chromium (apt-get install -y chromium); no network is used.
set -euo pipefail
run=${1:?usage: scripts/screenshot_report.sh RUN_DIR [WIDTHxHEIGHT]}
size=${2:-1400x4000}
page=$(realpath "$run/report.html")
[ -f "$page" ] || { echo "no report.html in $run; run: fspladder report $run" >&2; exit 2; }
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "chromium not found: apt-get install -y chromium" >&2; exit 2; }
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$(mktemp -d)" --hide-scrollbars --window-size="${size/x/,}" \
  --screenshot="$(realpath "$run")/report-screenshot.png" "file://$page" 2>/dev/null
echo "$run/report-screenshot.png"
