#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/fuzz.sh [SECONDS]: runs every fuzz harness (tests/fuzz) for SECONDS each (default
# 600), one after the other, from the build tree (BUILD_DIR, default build). ctest runs them
# for FUZZ_SECONDS (5) each; this is the longer run. A crash stops it and names its input.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
build=${BUILD_DIR:-build}
[ -x "$build/tests/fuzz/decoder_fuzz" ] || bash scripts/build.sh
for harness in decoder sock_diag proc_text output; do
  echo "== $harness: $seconds s"
  bash tests/fuzz/run_fuzzer.sh "$build/tests/fuzz/${harness}_fuzz" \
    "tests/fuzz/corpus/$harness" "$seconds" 2>&1 | grep -E "^(stat::|INFO: Done|==)" || true
  [ "${PIPESTATUS[0]}" = 0 ] || exit 1
done
