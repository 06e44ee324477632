#!/usr/bin/env bash
# Installs the system packages retl needs that this machine lacks (Debian/Ubuntu, apt-get).
#
#   scripts/setup.sh build    what `cargo build` needs: libclang (RocksDB's bindings), a C++
#                             compiler and make (RocksDB itself), OpenSSL headers + pkg-config
#                             (the PostgreSQL driver's TLS); protoc is vendored
#   scripts/setup.sh test     build + the PostgreSQL, MariaDB and Redis server binaries (the tests
#                             start throwaway servers from them) + the openssl program (test
#                             certificates)
#   scripts/setup.sh python   python3 with venv (the gRPC reflection and Flight SQL checks of .ci/run)
#
# Several modes may be given. As root it runs `apt-get update` once and installs what is missing;
# otherwise it prints the exact command to run and exits 1. It installs nothing when nothing is
# missing, and exits 0 then. The packages' own services are not started: the tests start their
# own servers from the binaries.
set -euo pipefail

usage() {
  echo "usage: $0 build|test|python ..." >&2
  exit 2
}
[ "$#" -gt 0 ] || usage

want_build=0 want_servers=0 want_python=0
for mode in "$@"; do
  case "$mode" in
    build) want_build=1 ;;
    test) want_build=1 want_servers=1 ;;
    python) want_python=1 ;;
    *) usage ;;
  esac
done

# ---- detection: each check looks for what is used, not for a package name ----

# An executable on PATH (bash's `command -v` also reports a file it cannot execute).
has() {
  local path
  path="$(command -v "$1" 2>/dev/null)" && [ -x "$path" ] && [ -f "$path" ]
}

# libclang as clang-sys (bindgen) finds it: LIBCLANG_PATH, else the usual library directories. The
# unversioned `libclang.so` / `libclang-N.so` come with libclang-N-dev, which also brings the
# compiler headers (stddef.h, ...) bindgen needs; the runtime library alone (libclang.so.1) is not
# enough.
has_libclang() {
  local dirs=() d
  [ -n "${LIBCLANG_PATH:-}" ] && dirs+=("$LIBCLANG_PATH")
  dirs+=(/usr/lib/llvm-*/lib /usr/lib/*-linux-gnu /usr/lib64 /usr/lib /usr/local/lib)
  for d in "${dirs[@]}"; do
    if compgen -G "$d/libclang.so" >/dev/null || compgen -G "$d/libclang-*.so" >/dev/null; then
      return 0
    fi
  done
  return 1
}

has_openssl_headers() {
  { has pkg-config && pkg-config --exists openssl; } || [ -f /usr/include/openssl/ssl.h ]
}

# The directories the testkit looks in besides PATH (tests/testkit/src/postgres/mod.rs, mariadb/mod.rs).
has_initdb() {
  has initdb || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

has_mariadbd() {
  has mariadbd || [ -x /usr/sbin/mariadbd ]
}

# redis-server and redis-cli, from Debian's redis-server package (tests/testkit/src/redis.rs).
has_redis() {
  has redis-server && has redis-cli
}

has_python_venv() {
  has python3 && python3 -c 'import venv, ensurepip' >/dev/null 2>&1
}

packages=()    # installed with recommends
servers=()     # installed without recommends (no client GUIs, docs, ...)
if [ "$want_build" = 1 ]; then
  has_libclang || packages+=(libclang-dev)
  has g++ || packages+=(g++)
  has make || packages+=(make)
  has pkg-config || packages+=(pkg-config)
  has_openssl_headers || packages+=(libssl-dev)
fi
if [ "$want_servers" = 1 ]; then
  has openssl || packages+=(openssl)
  has_initdb || servers+=(postgresql)
  has_mariadbd || servers+=(mariadb-server)
  has_redis || servers+=(redis-server)
fi
if [ "$want_python" = 1 ]; then
  has_python_venv || packages+=(python3 python3-venv)
fi

if [ "${#packages[@]}" -eq 0 ] && [ "${#servers[@]}" -eq 0 ]; then
  exit 0
fi

all=("${packages[@]}" "${servers[@]}")
install_command="apt-get update && apt-get install -y ${all[*]}"
if [ "$(id -u)" != 0 ]; then
  {
    echo "retl needs these system packages, which this machine lacks: ${all[*]}"
    echo "install them with:"
    echo
    echo "  sudo apt-get update && sudo apt-get install -y ${all[*]}"
    echo
    echo "then run this command again."
  } >&2
  exit 1
fi
if ! has apt-get; then
  echo "retl needs these system packages (Debian names), which this machine lacks: ${all[*]};" \
    "there is no apt-get here: install them with your system's package manager, then run this" \
    "command again" >&2
  exit 1
fi

echo "installing the system packages retl needs: ${all[*]} ($install_command)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [ "${#packages[@]}" -gt 0 ]; then
  apt-get install -y -qq --no-upgrade "${packages[@]}"
fi
if [ "${#servers[@]}" -gt 0 ]; then
  # A postinst that cannot start its service (no init system in a container) exits non-zero;
  # what counts is that the binaries are there, checked below.
  apt-get install -y -qq --no-upgrade --no-install-recommends "${servers[@]}" \
    || echo "apt-get install ${servers[*]} exited non-zero; checking the binaries" >&2
fi

# Check again: a package may not provide what was looked for under the expected name.
failed=()
if [ "$want_build" = 1 ]; then
  has_libclang || failed+=("libclang (libclang-dev; or set LIBCLANG_PATH to the directory of libclang.so)")
  has g++ || failed+=("g++")
  has make || failed+=("make")
  has pkg-config || failed+=("pkg-config")
  has_openssl_headers || failed+=("OpenSSL headers (libssl-dev)")
fi
if [ "$want_servers" = 1 ]; then
  has openssl || failed+=("openssl")
  has_initdb || failed+=("PostgreSQL server binaries (initdb, from postgresql)")
  has_mariadbd || failed+=("MariaDB server binary (mariadbd, from mariadb-server)")
  has_redis || failed+=("Redis server and client (redis-server, redis-cli, from redis-server)")
fi
if [ "$want_python" = 1 ]; then
  has_python_venv || failed+=("python3 with venv (python3-venv)")
fi
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'still missing after apt-get install: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "system packages installed" >&2
