#!/usr/bin/env bash
# One command from a fresh machine to every test run: installs what is missing,
# builds, runs the unit tests and the kernel tests (root; under CI=true a
# kernel test that cannot load BPF fails instead of skipping).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j"$(nproc)" --timeout 300
