#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Configures and builds everything into ${BUILD_DIR:-build}.
#   PORTWATCH_STATIC=1   portwatch as one static executable (what scripts/package.sh ships;
#                        libmicrohttpd built without HTTPS by scripts/static-microhttpd.sh,
#                        libmnl by scripts/static-mnl.sh: Debian ships no static archive)
#   PORTWATCH_TESTS=OFF  without the tests
#   --configure-only     configure, do not build
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
options=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPORTWATCH_TESTS="${PORTWATCH_TESTS:-ON}")
if [ "${PORTWATCH_STATIC:-0}" = 1 ]; then
  microhttpd=$(bash scripts/static-microhttpd.sh)
  mnl=$(bash scripts/static-mnl.sh)
  export PKG_CONFIG_PATH=$microhttpd/lib/pkgconfig:$mnl/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
  options+=(-DPORTWATCH_STATIC=ON)
fi
cmake -S . -B "$build_dir" "${options[@]}" >/dev/null
[ "${1:-}" = --configure-only ] || cmake --build "$build_dir" -j"$(nproc)"
