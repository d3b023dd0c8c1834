#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""bench-live-refresh.py: the CPU the once-a-second refresh of the live views costs on a big
model: PortModel::current() plus the Prometheus exposition (monitor --metrics-listen) or top's
screen, for {sockets, destination scopes} = {1000, 10}, {100000, 100}, {100000, 10000}
(tests/bench/live_refresh.cpp, Google Benchmark). A refresh runs once a second, so its time in
ms is also the per-mille of one core it takes. No root, no kernel: synthetic events.

Prints Google Benchmark's table (mean, median, stddev, cv of --repetitions runs). Exit 0, or 2
if the benchmark could not be built or run.

  python3 scripts/bench-live-refresh.py [--repetitions 3] [--build] [--build-dir build]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

NAME = "bench-live-refresh"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=bl.positive_int, default=3)
    parser.add_argument("--build", action="store_true", help="build live_refresh first")
    parser.add_argument("--build-dir", type=Path, default=bl.REPO / "build")
    args = parser.parse_args()
    bl.build(args.build_dir, "live_refresh", skip=not args.build)
    binary = bl.executable(args.build_dir / "tests/live_refresh", " (PORTWATCH_TESTS off?)")
    status = subprocess.run([str(binary), f"--benchmark_repetitions={args.repetitions}",
                             "--benchmark_report_aggregates_only=true"]).returncode
    if status:
        raise bl.BenchError(f"{binary} exited with status {status}")
    return 0


if __name__ == "__main__":
    bl.run_main(NAME, main)
