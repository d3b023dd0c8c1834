#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# One command from a fresh machine to a running monitor: installs what is
# missing, builds, and runs `portwatch` with the given arguments
# (default: `monitor`). Needs root, as the monitor does.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh >&2
[ $# -eq 0 ] && set -- monitor
exec "./${BUILD_DIR:-build}/portwatch" "$@"
