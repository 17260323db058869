#!/usr/bin/env bash
# Make sure a mosquitto binary exists for the embedded broker (tests and `make demo`).
#
# Search order, as in carbonflow/embedded/broker.py: $CARBONFLOW_MOSQUITTO, mosquitto on PATH,
# /usr/sbin/mosquitto, .cache/mosquitto/usr/sbin/mosquitto. When none is found:
#   root:     apt-get install mosquitto, then stop the system service the package starts
#             (carbonflow starts its own broker on a private port);
#   non-root: apt-get download the packages and unpack them under .cache/mosquitto.
# Silent on success; exits 1 with instructions when nothing works.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$repo/.cache/mosquitto"
debs="$repo/.cache/mosquitto-debs"
log="$repo/.cache/ensure-mosquitto.log"
system_binary=/usr/sbin/mosquitto
cached_binary="$cache/usr/sbin/mosquitto"

found() {
    if [[ -n "${CARBONFLOW_MOSQUITTO:-}" ]]; then
        [[ -x "$CARBONFLOW_MOSQUITTO" ]] && return 0
        echo "CARBONFLOW_MOSQUITTO=$CARBONFLOW_MOSQUITTO is not an executable file" >&2
        exit 1
    fi
    command -v mosquitto >/dev/null 2>&1 && return 0
    [[ -x "$system_binary" ]] && return 0
    [[ -x "$cached_binary" ]] && return 0
    return 1
}

cached_binary_runs() {
    local libs=()
    local dir
    for dir in "$cache"/usr/lib/*-linux-gnu* "$cache"/lib/*-linux-gnu* "$cache/usr/lib"; do
        [[ -d "$dir" ]] && libs+=("$dir")
    done
    local IFS=:
    local rc=0
    # `mosquitto -h` prints usage and exits 3; a missing library makes the loader exit 127.
    LD_LIBRARY_PATH="${libs[*]}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        "$cached_binary" -h >/dev/null 2>&1 || rc=$?
    [[ $rc -ne 127 ]]
}

give_up() {
    {
        echo "carbonflow needs the mosquitto MQTT broker and could not install it."
        echo "Install it with:  sudo apt-get install mosquitto"
        echo "(or set CARBONFLOW_MOSQUITTO to a mosquitto binary), then run 'make deps' again."
        [[ -s "$log" ]] && echo "Details: $log"
    } >&2
    exit 1
}

found && exit 0
mkdir -p "$repo/.cache"
: >"$log"

if [[ "$(id -u)" -eq 0 ]]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        give_up
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends mosquitto; } \
        >>"$log" 2>&1; then
        give_up
    fi
    # The package starts a system-wide broker on port 1883; carbonflow runs its own.
    {
        service mosquitto stop || true
        if command -v systemctl >/dev/null 2>&1; then
            systemctl disable --now mosquitto || true
        fi
    } >>"$log" 2>&1
    found && exit 0
    give_up
fi

# Not root: unpack the packages into the repository's cache, no installation needed.
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then
    give_up
fi
rm -rf "$debs"
mkdir -p "$debs" "$cache"
if ! (cd "$debs" && apt-get download mosquitto libmosquitto1 libcjson1 libdlt2 libwrap0) \
    >>"$log" 2>&1; then
    give_up
fi
for deb in "$debs"/*.deb; do
    dpkg -x "$deb" "$cache" >>"$log" 2>&1 || give_up
done
if [[ -x "$cached_binary" ]] && cached_binary_runs; then
    exit 0
fi
give_up
