#!/usr/bin/env bash
# Screenshot the rendered notebook index (after `make html`) with headless Chromium, offline.
#
#   notebooks/src/screenshot.sh [PAGE.html] [OUT.png]      defaults: site/index.html, site/index.png
#
# Window size: SCREENSHOT_SIZE=WIDTH,HEIGHT (default 1400,4200: tall enough for every thumbnail).
# Browser: $CHROMIUM, else chromium / chromium-browser / google-chrome on PATH. Debian: apt-get install chromium.
# Exit status 3 when no browser is found (tests skip then).
set -euo pipefail
cd "$(dirname "$0")/../.."
page=${1:-site/index.html}
out=${2:-site/index.png}
size=${SCREENSHOT_SIZE:-1400,4200}
browser=${CHROMIUM:-}
if [ -z "$browser" ]; then
  for name in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$name" >/dev/null 2>&1; then browser=$(command -v "$name"); break; fi
  done
fi
if [ -z "$browser" ]; then
  echo "screenshot.sh: no chromium found; install it (Debian: apt-get install -y chromium) or set CHROMIUM" >&2
  exit 3
fi
if [ ! -f "$page" ]; then
  echo "screenshot.sh: $page not found; run 'make html' first" >&2
  exit 2
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
mkdir -p "$(dirname "$out")"
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --disable-dev-shm-usage --hide-scrollbars \
  --user-data-dir="$profile" --window-size="$size" --virtual-time-budget=10000 \
  --screenshot="$(realpath -m "$out")" "file://$(realpath "$page")" 2>/dev/null
if [ ! -s "$out" ]; then
  echo "screenshot.sh: $browser wrote no screenshot" >&2
  exit 1
fi
echo "wrote $out"
