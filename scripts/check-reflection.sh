#!/usr/bin/env bash
# Checks that a Python client using grpcio-reflection (gRPC reflection v1alpha) lists the services
# of a running retl daemon (scripts/reflection_check.py starts and stops the daemon).
#
#   scripts/check-reflection.sh [RETL_BINARY]
#
# Without RETL_BINARY it builds the debug binary (`cargo build --bin retl`). grpcio and
# grpcio-reflection are installed into a venv under $HOME/.cache/retl/venv, reused when present.
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
if ! "$venv/bin/python" -c 'import grpc, grpc_reflection.v1alpha' >/dev/null 2>&1; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --timeout 60 \
    'grpcio>=1.60' 'grpcio-reflection>=1.60'
fi
timeout 300 "$venv/bin/python" scripts/reflection_check.py "$binary"
