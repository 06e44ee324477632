#!/usr/bin/env bash
# The README's test command: installs what the build and the tests need when missing
# (scripts/setup.sh test: libclang, a C++ compiler, the PostgreSQL and MariaDB server binaries,
# openssl; as root it installs them, otherwise it prints the command and stops), then runs every
# test of the workspace. Arguments are passed to `cargo test` (e.g. `-p retl-tests api::`).
# The `retl` binary is built first: some tests run it as a child process (`cargo test` builds
# binaries only for their own package's integration tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
if [ "$#" -eq 0 ]; then
  set -- --workspace
fi
cargo build --bin retl
exec cargo test "$@"
