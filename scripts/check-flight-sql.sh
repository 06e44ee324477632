#!/usr/bin/env bash
# Checks the daemon's Arrow Flight SQL endpoint with third-party Python clients: the ADBC Flight
# SQL driver and pyarrow.flight (scripts/flight_sql_check.py runs `retl quickstart` for a staged
# extract, starts and stops the daemon over it).
#
#   scripts/check-flight-sql.sh [RETL_BINARY]
#
# Without RETL_BINARY it builds the debug binary (`cargo build --bin retl`). adbc-driver-flightsql,
# adbc-driver-manager and pyarrow are installed into the venv under $HOME/.cache/retl/venv (the one
# of scripts/check-reflection.sh), reused when present.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh python

binary="${1:-}"
if [ -z "$binary" ]; then
  cargo build --bin retl
  target_dir="$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
  binary="$target_dir/debug/retl"
fi
[ -x "$binary" ] || { echo "no retl binary at $binary" >&2; exit 1; }

venv="$HOME/.cache/retl/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" -c 'import adbc_driver_flightsql.dbapi, adbc_driver_manager, pyarrow.flight' >/dev/null 2>&1; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --timeout 60 \
    'adbc-driver-flightsql>=1.0' 'adbc-driver-manager>=1.0' 'pyarrow>=14'
fi
timeout 360 "$venv/bin/python" scripts/flight_sql_check.py "$binary"
