#!/usr/bin/env bash
# The README's quickstart: installs the build's system packages when missing (scripts/setup.sh
# build: as root it installs them, otherwise it prints the command and stops), then builds and runs
# `retl quickstart` with the arguments given (e.g. --dir DIR --rows N).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
exec cargo run -- quickstart "$@"
