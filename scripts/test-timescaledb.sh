#!/usr/bin/env bash
# The test suite on a real TimescaleDB (2.28.3 on PostgreSQL 15), built from source by the kit
# in shared/tools/timescaledb (its README): `make test-timescaledb [PYTEST_ARGS=…]`.
#
# The kit: $CARBONFLOW_TIMESCALEDB_KIT, else ../shared/tools/timescaledb next to this checkout,
# else /work/shared/tools/timescaledb. Without one there is nothing to run: the script says so
# and exits 0 (a user's TimescaleDB comes from Timescale's packages or image; `make test` covers
# plain PostgreSQL). A kit named in CARBONFLOW_TIMESCALEDB_KIT that is not there is an error.
#
# Builds the kit (cached in $TIMESCALEDB_PREFIX, else ~/.cache/timescaledb-pg15), starts a
# private cluster on a free port in a temporary directory, and runs pytest with DATABASE_URL on
# it, CARBONFLOW_PG_BIN on the same binaries (clusters the tests start preload TimescaleDB too)
# and CARBONFLOW_REQUIRE_TIMESCALEDB=1: a test that needs TimescaleDB fails instead of
# skipping. The cluster is stopped and removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'test-timescaledb: %s\n' "$*" >&2; }

kit=${CARBONFLOW_TIMESCALEDB_KIT:-}
if [[ -n $kit ]]; then
  [[ -x $kit/build.sh && -x $kit/start.sh ]] ||
    { say "CARBONFLOW_TIMESCALEDB_KIT=$kit holds no build.sh/start.sh"; exit 2; }
else
  for candidate in ../shared/tools/timescaledb /work/shared/tools/timescaledb; do
    if [[ -x $candidate/build.sh && -x $candidate/start.sh ]]; then
      kit=$candidate
      break
    fi
  done
fi
if [[ -z $kit ]]; then
  say "no TimescaleDB kit (CARBONFLOW_TIMESCALEDB_KIT, ../shared/tools/timescaledb): not run"
  exit 0
fi
kit=$(realpath "$kit")
prefix=$(realpath -m "${TIMESCALEDB_PREFIX:-$HOME/.cache/timescaledb-pg15}")
export TIMESCALEDB_PREFIX=$prefix

started=$SECONDS
"$kit/build.sh" "$prefix"
say "kit ready in $((SECONDS - started)) s ($kit → $prefix)"

workdir=$(mktemp -d "${TMPDIR:-/tmp}/carbonflow-tsdb.XXXXXX")
chmod 0711 "$workdir"
cleanup() {
  "$kit/stop.sh" "$workdir/data" >/dev/null 2>&1 || true
  rm -rf "$workdir"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url_line=$("$kit/start.sh" "$workdir/data" "$port")
export "${url_line?}"
export CARBONFLOW_PG_BIN=$prefix/lib/postgresql/15/bin
export CARBONFLOW_REQUIRE_TIMESCALEDB=1
say "TimescaleDB on port $port; pytest $*"
"${VENV:-.venv}/bin/pytest" -q -p no:cacheprovider "$@"
