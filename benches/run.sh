#!/bin/sh
# Runs retl's high-volume benchmark suite at one size and prints a markdown table.
#
#   benches/run.sh 1m                  # every scenario and both baselines at 1M rows
#   benches/run.sh 10m --scenarios 1,2 # extra arguments go to `retl-bench suite`
#
# Builds `retl-bench` in release mode (under nice, in a persistent target dir: the first build
# takes most of an hour on 2 cores), generates the data once into $HOME/.cache/retl/bench-data,
# installs DuckDB from PyPI into $HOME/.cache/retl/bench-venv, and needs PostgreSQL's server
# binaries (apt-get install -y postgresql) for scenario 5 and the PostgreSQL baseline.
set -eu
size="${1:-1m}"
[ $# -gt 0 ] && shift
here="$(cd "$(dirname "$0")" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/retl/target-release}"
nice -n 19 cargo build --release --manifest-path "$here/../Cargo.toml" -p retl-benches --bin retl-bench
exec "$CARGO_TARGET_DIR/release/retl-bench" suite --rows "$size" \
  --duckdb-script "$here/duckdb_diff.py" \
  --command-line "benches/run.sh $size${*:+ $*}" "$@"
