#!/usr/bin/env bash
# Make sure Debian's chromium exists for the live-view end-to-end test
# (tests/services/api/test_live_view.py drives it with Playwright; Playwright's own browser
# download is never used), with a Chinese font so that the view's Chinese labels render.
#
# Present (/usr/bin/chromium, or $CARBONFLOW_CHROMIUM, and the font): nothing to do.
# Absent, as root with apt-get: apt-get install chromium fonts-wqy-microhei.
# Absent otherwise, or apt-get failing: a note on stderr and exit 0 — the end-to-end test then skips, and the rest
# of the suite does not depend on a browser.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log="$repo/.cache/ensure-chromium.log"
binary="${CARBONFLOW_CHROMIUM:-/usr/bin/chromium}"
font=/usr/share/fonts/truetype/wqy/wqy-microhei.ttc

[[ -x "$binary" && -f "$font" ]] && exit 0

if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    {
        if [[ ! -x "$binary" ]]; then
            echo "note: $binary not found; the live-view browser test will be skipped."
        else
            echo "note: no Chinese font ($font): the live view's Chinese labels show as boxes."
        fi
        echo "Install with:  sudo apt-get install chromium fonts-wqy-microhei   (then 'make test-deps')"
    } >&2
    exit 0
fi

mkdir -p "$repo/.cache"
: >"$log"
export DEBIAN_FRONTEND=noninteractive
if ! {
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-wqy-microhei
} >>"$log" 2>&1; then
    # Only the browser test needs it: say so and let the rest of the suite run.
    echo "note: could not install chromium with apt-get (details: $log);" \
        "the live-view browser test will be skipped." >&2
    exit 0
fi
[[ -x "$binary" ]] && exit 0
echo "note: chromium was installed but $binary is missing (details: $log);" \
    "the live-view browser test will be skipped." >&2
exit 0
