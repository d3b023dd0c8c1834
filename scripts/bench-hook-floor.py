#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""bench-hook-floor.py: what does merely having BPF programs attached to portwatch's hooks cost a
connect()-heavy workload, before those programs do any work?

The programs (tests/bench/hook_floor.bpf.c, attached by tests/bench/hook_floor) do almost
nothing: an early return, one helper call or one per-CPU counter increment. So the rate of the
loopback connect storm (tests/bench/connect_storm) with them attached, relative to the rate with
nothing attached, is the floor cost of the hooks themselves: the price any program on those
hooks pays, however cheap its body is made. (scripts/bench-cost.py measures the floor of
exactly portwatch's hook set next to portwatch itself.)

Conditions (each run --rounds times, interleaved in a balanced order, benchlib.balanced_order():
over every n rounds each condition runs in each place and after each other condition equally
often; n conditions, 2n if n is odd):
  base                  nothing attached
  sys_exit              tp_btf/sys_exit
  sys_exit+set_state    ... + tp_btf/inet_sock_set_state
  all5                  ... + tp_btf/tcp_destroy_sock, cgroup/sock_create, cgroup/sock_release
  sockops_noop          sockops returning at once
  sockops_state         sockops that also turns on STATE_CB for connecting sockets

Prints per-round rates, the median rate, the median ratio to base, the paired ratio and the
storm's kernel CPU per connection per condition. Exit 0 whatever the figures are (a
measurement, not a check); 2 if something could not run. Must run as root.

  sudo python3 scripts/bench-hook-floor.py [--rounds 6] [--seconds 4] [--pin-cpu 0|none]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

NAME = "bench-hook-floor"
ALL5 = ["floor_sys_exit", "floor_set_state", "floor_destroy", "floor_sock_create",
        "floor_sock_release"]
CONDITIONS = {
    "base": [],
    "sys_exit": ["floor_sys_exit"],
    "sys_exit+set_state": ["floor_sys_exit", "floor_set_state"],
    "sys_exit+set_state+destroy+sock_create+sock_release": ALL5,
    "sockops_noop": ["floor_sockops_noop"],
    "sockops_state": ["floor_sockops_state"],
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=bl.positive_int, default=bl.balanced_rounds(len(CONDITIONS)),
                        help="default: one balanced design, %(default)s")
    parser.add_argument("--seconds", type=bl.positive_float, default=4,
                        help="storm length per run (default 4)")
    parser.add_argument("--build", action="store_true",
                        help="build connect_storm and hook_floor first")
    parser.add_argument("--build-dir", type=Path, default=bl.REPO / "build")
    parser.add_argument("--pin-cpu", type=bl.pin_cpu_arg, default="0",
                        help="CPU for the storm (default 0; none: not pinned)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data")
    return parser.parse_args()


def run_condition(storm: bl.Storm, loader: Path, programs: list[str], seconds: float,
                  work: Path, tag: str) -> dict:
    """One storm run with PROGRAMS attached (none: nothing)."""
    if not programs:
        return storm.run(seconds)
    out, err = work / f"{tag}.out", work / f"{tag}.err"
    out.touch()
    process = bl.start([str(loader), *programs], out, err)
    bl.wait_for_line(process, out, lambda line: line == "ready",
                     f"hook_floor {' '.join(programs)}", err)
    result = storm.run(seconds)
    bl.stop_checked(process, "hook_floor", err)
    return result


def print_header(args: argparse.Namespace, storm: bl.Storm) -> None:
    print("== portwatch hook floor benchmark")
    print("measuring: loopback TCP connect() rate (connect_storm: socket, connect, getsockname,"
          " close;\n  one client thread, one accept thread) with trivial BPF programs attached to"
          " the hooks\n  portwatch uses. The programs do (almost) nothing, so the ratio to base is"
          " the cost of the\n  hooks themselves: the floor under any program on them, however"
          " cheap its body.")
    for line in bl.machine_lines(["kernel.bpf_stats_enabled"]):
        print(line)
    print(f"runs:      {args.rounds} rounds x {len(CONDITIONS)} conditions, {args.seconds:g} s"
          " each, order balanced (benchlib.balanced_order()); each storm in a fresh network"
          " namespace")
    print(f"placement: {storm.placement}")
    print("conditions (by number, as in the round order below):")
    for index, (name, programs) in enumerate(CONDITIONS.items()):
        print(f"  {index} {name:52} {' '.join(programs) or '(nothing attached)'}")


def print_results(results: dict[str, list[dict]], rounds: int) -> None:
    names = list(results)
    base_runs = results[names[0]]
    medians = {c: bl.median(r["rate"] for r in runs) for c, runs in results.items()}
    base = medians[names[0]]
    width = max(len(c) for c in names)
    print()
    print("rN: connections/s in round N; median: of those; ratio: median / median of base;"
          " cost: 1 - ratio;")
    print("paired: median over rounds of (rate / base rate of the same round); sys us/conn: the"
          " storm's")
    print("kernel CPU time per connection, median (the BPF programs run in that time)")
    print()
    print(f"{'condition':{width}}  " + " ".join(f"{'r' + str(n):>7}" for n in range(1, rounds + 1))
          + "   median   ratio    cost  paired  sys us/conn")
    for cond, runs in results.items():
        r = bl.ratio(medians[cond], base)
        paired = bl.median(bl.ratio(a["rate"], b["rate"]) for a, b in zip(runs, base_runs))
        sys_us = bl.median(bl.sys_us_per_connection(run) for run in runs)
        print(f"{cond:{width}}  " + " ".join(f"{run['rate']:7.0f}" for run in runs)
              + f"  {medians[cond]:7.0f}  {r:6.3f}  {100 * (1 - r):5.1f}%  {paired:6.3f}"
              + f"  {sys_us:11.2f}")
    failures = sum(r.get("failures", 0) for runs in results.values() for r in runs)
    if failures:
        print(f"note: {failures} failed connect attempts in all (retried by the storm)")


def main() -> int:
    args = parse_args()
    bl.require_root("hook_floor loads BPF programs")
    bl.build(args.build_dir, "connect_storm", "hook_floor", skip=not args.build)
    bl.require_no_portwatch_attached()
    storm = bl.Storm(bl.executable(args.build_dir / "tests/connect_storm"), args.pin_cpu)
    loader = bl.executable(args.build_dir / "tests/hook_floor", " (PORTWATCH_TESTS off?)")
    work = bl.work_dir(NAME, args.keep)
    print_header(args, storm)
    storm.run(1)  # warm-up, discarded
    names = list(CONDITIONS)
    results: dict[str, list[dict]] = {name: [] for name in names}
    for n in range(args.rounds):
        order = bl.balanced_order(len(names), n)
        for index in order:
            name = names[index]
            results[name].append(run_condition(storm, loader, CONDITIONS[name], args.seconds,
                                               work, f"r{n + 1}-{index}"))
        print(f"   round {n + 1}/{args.rounds} done (order {' '.join(map(str, order))})",
              flush=True)
    print_results(results, args.rounds)
    return 0


if __name__ == "__main__":
    bl.run_main(NAME, main)
