#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# One command from a fresh machine to every test run: installs what is missing, builds
# (statically, into ${BUILD_DIR:-build-static}), packages (scripts/package.sh: dist/, whose artifacts the package tests and the kernel matrix
# use), runs the unit, kernel, deploy and package tests on this kernel (root; under CI=true a
# test that cannot run fails instead of skipping), then the kernel tests on each kernel of the
# matrix under qemu (scripts/vmtest.py; VMTEST=0 leaves it out, except under CI=true).
# Ends with the wall time of each stage.
set -euo pipefail
cd "$(dirname "$0")/.."
# One build, static, for the tests and the release: the tests run the binary that ships.
export PORTWATCH_STATIC=1 BUILD_DIR=${BUILD_DIR:-build-static}
export STATIC_BUILD_DIR=$BUILD_DIR
# The hook set `--hooks auto` must choose on the machines this runs on (kernel-facts: 6.18, which
# refuses fexit programs with EPERM), for the hook-set kernel test; vmtest.py sets each VM's.
export PORTWATCH_EXPECTED_HOOK_SET=${PORTWATCH_EXPECTED_HOOK_SET:-tracepoint}
stages=()
status=0
stage() {  # NAME COMMAND...: runs it, notes its time; a failure fails the run at the end
    local name=$1 start=$SECONDS
    shift
    "$@" || { status=1; name="$name (FAILED)"; }
    stages+=("$(printf '%-22s %5d s' "$name" $((SECONDS - start)))")
}
stage install bash scripts/install-deps.sh
stage build bash scripts/build.sh
stage package bash scripts/package.sh
if [ $status -eq 0 ]; then
  stage "tests on this kernel" \
    bash -c 'cd "$BUILD_DIR" && ctest --output-on-failure -j"$(nproc)" --timeout 300'
  if [ "${CI:-}" = true ] || [ "${VMTEST:-1}" != 0 ]; then
    stage "kernel matrix" python3 scripts/vmtest.py
  fi
fi
echo "test.sh: stage times (total $SECONDS s)"
printf '  %s\n' "${stages[@]}"
exit $status
