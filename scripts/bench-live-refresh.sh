#!/usr/bin/env bash
# bench-live-refresh.sh: the CPU the once-a-second refresh of the live views costs on a big
# model: PortModel::current() plus the Prometheus exposition (monitor --metrics-listen) or
# top's screen, for {sockets, destination scopes} = {1000, 10}, {100000, 100}, {100000, 10000}
# (tests/bench/live_refresh.cpp, Google Benchmark). A refresh runs once a second, so its time
# in ms is also the per-mille of one core it takes. No root, no kernel: synthetic events.
#
#   bash scripts/bench-live-refresh.sh                  # REPETITIONS=3 by default
#   REPETITIONS=5 BUILD_DIR=build bash scripts/bench-live-refresh.sh
set -euo pipefail

BENCH_NAME=bench-live-refresh
# shellcheck source=lib/bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-common.sh"

repetitions=${REPETITIONS:-3}
build_dir=${BUILD_DIR:-build}
require_positive_integer REPETITIONS "$repetitions"

bench_enter_repo
bench_build "$build_dir" live_refresh
binary=$build_dir/tests/live_refresh
[[ -x $binary ]] || die "$binary was not built (is PORTWATCH_TESTS off in $build_dir?)"
"$binary" --benchmark_repetitions="$repetitions" --benchmark_report_aggregates_only=true
