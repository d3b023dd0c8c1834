#!/usr/bin/env bash
# One command from a fresh machine to every test run: installs what is missing,
# builds, runs the unit tests and the kernel tests on this kernel (root; under CI=true a
# kernel test that cannot load BPF fails instead of skipping), then the kernel tests on
# each kernel of the matrix under qemu (scripts/vmtest.py; VMTEST=0 leaves it out, except
# under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
status=0
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure -j"$(nproc)" --timeout 300) || status=1
if [ "${CI:-}" = true ] || [ "${VMTEST:-1}" != 0 ]; then
  python3 scripts/vmtest.py || status=1
fi
exit $status
