#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""bench-record-cost.py: where portwatch's BPF time above the empty hooks goes, found by taking
the work out one piece at a time (issue 15).

Builds HEAD in a temporary git worktree once per variant. Each variant removes one more piece of
the programs' work than the one before:
  no_clock    reserve_record() stamps no time (no bpf_ktime_get_boot_ns())
  no_fill     the sockops records (a TCP connect, its release) carry only the cookie
  no_record   the sockops path sends no record at all (no reserve, counters, header, submit)
  no_fd_walk  pw_sys_enter returns before it walks the fd table on connect()
Then runs scripts/bench-cost.py with every variant as a --compare condition, in the same
interleaved rounds as the floor and the full agent, and prints each piece's cost: the difference
in BPF ns per storm connection (bpf_stats, median of rounds) between neighbouring variants, and
the gap to the floor that bpf_stats predicts for each variant.

The variants drop events on purpose: their storm ports go missing, and bench-cost.py's verdict
fails for that. Only its figures are used here. If a piece's source text is no longer where this
script looks for it, the script stops and names the piece.

  sudo python3 scripts/bench-record-cost.py [--rounds N] [--seconds 4]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

NAME = "bench-record-cost"

# (variant, what it removes, file, text, replacement): applied in order, each on top of the last
PIECES = [
    ("no_clock", "the records' clock (bpf_ktime_get_boot_ns)", "bpf/records.bpf.h",
     "    record->boot_ns = bpf_ktime_get_boot_ns();\n",
     "    record->boot_ns = 0;\n"),
    ("no_fill", "filling the sockops records (socket, task)", "bpf/sockops_path.bpf.h",
     "    fill_tcp_socket(sk, cookie, &r->sock);\n    fill_task(&r->task);\n",
     "    r->sock.cookie = cookie;\n"),
    ("no_fill", None, "bpf/sockops_path.bpf.h",
     "    __builtin_memset(&r->held, 0, sizeof(r->held)); /* no owner: PW_HOW_NONE */\n"
     "    fill_tcp_socket(sk, cookie, &r->held.sock);\n",
     "    r->held.sock.cookie = cookie;\n"),
    ("no_record", "the sockops records' ring buffer work (reserve, count, header, submit)",
     "bpf/sockops_path.bpf.h",
     "    if (!tcp_socket_passes_filter(sk))\n        return;\n",
     "    if (!tcp_socket_passes_filter(sk) || cookie != ~0ULL)\n        return;\n"),
    ("no_record", None, "bpf/sockops_path.bpf.h",
     "                                                       __u8 reason)\n{\n",
     "                                                       __u8 reason)\n{\n"
     "    if (cookie != ~0ULL)\n        return;\n"),
    ("no_fd_walk", "pw_sys_enter's fd table walk on connect()", "bpf/syscall_path.bpf.h",
     "    /* regs is the tracepoint's BTF pointer",
     "    if (call.syscall == PW_SYSCALL_CONNECT)\n        return 0;\n"
     "    /* regs is the tracepoint's BTF pointer"),
]
VARIANTS = list(dict.fromkeys(piece[0] for piece in PIECES))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=bl.positive_int,
                        help="bench-cost.py's rounds (default: one whole balanced design, 14)")
    parser.add_argument("--seconds", type=bl.positive_float, default=4,
                        help="storm length per run (default 4)")
    parser.add_argument("--keep", action="store_true", help="keep the worktree and the builds")
    return parser.parse_args()


def require_committed() -> None:
    """The variants are built from HEAD and the agent from the checkout: they must agree."""
    changed = subprocess.run(["git", "-C", str(bl.REPO), "diff", "--quiet", "HEAD", "--",
                              "bpf", "userspace"]).returncode
    if changed:
        raise bl.BenchError("bpf/ or userspace/ differ from HEAD: commit or stash them first"
                            " (the variants are built from HEAD)")


def add_worktree(work: Path, keep: bool) -> Path:
    source = work / "src"
    subprocess.run(["git", "-C", str(bl.REPO), "worktree", "add", "--detach", str(source), "HEAD"],
                   check=True, capture_output=True)
    if not keep:
        bl.at_cleanup(lambda: subprocess.run(
            ["git", "-C", str(bl.REPO), "worktree", "remove", "--force", str(source)],
            capture_output=True))
    return source


def remove_piece(source: Path, variant: str) -> None:
    for name, _, file, text, replacement in PIECES:
        if name != variant:
            continue
        path = source / file
        code = path.read_text()
        if code.count(text) != 1:
            raise bl.BenchError(f"{variant}: the text it removes is not in {file} once; update"
                                " PIECES in this script to the current source")
        path.write_text(code.replace(text, replacement))


def build_variants(source: Path, work: Path) -> dict[str, Path]:
    build_dir = work / "build"
    binaries = {}
    for variant in VARIANTS:
        remove_piece(source, variant)
        print(f"== {variant}:", flush=True)
        bl.build(build_dir, "portwatch", source=source)
        binaries[variant] = work / f"portwatch-{variant}"
        shutil.copy2(build_dir / "portwatch", binaries[variant])
    return binaries


def run_bench_cost(args: argparse.Namespace, binaries: dict[str, Path], summary: Path) -> None:
    command = [sys.executable, str(bl.REPO / "scripts/bench-cost.py"), "--build",
               "--seconds", str(args.seconds), "--summary", str(summary)]
    if args.rounds:
        command += ["--rounds", str(args.rounds)]
    for variant, binary in binaries.items():
        command += ["--compare", f"{variant}={binary}"]
    print("== " + " ".join(command), flush=True)
    # exit 1 is bench-cost's verdict, which the variants fail by design; 2 is a failed run
    if subprocess.run(command).returncode not in (0, 1):
        raise bl.BenchError("bench-cost.py could not run (its output is above)")


def print_pieces(summary: dict) -> None:
    conditions = summary["conditions"]
    agent = next(name for name in conditions if name.startswith("agent(") and "@" not in name)
    chain = [agent] + [f"{agent}@{variant}" for variant in VARIANTS] + ["floor"]
    names = [piece[1] for piece in PIECES if piece[1]] + ["the rest: checks and lookups"]
    ns = [conditions[c]["bpf_ns_per_connection"] for c in chain]
    above_floor = ns[0] - ns[-1]
    print()
    print(f"Where {agent}'s BPF time above the floor goes ({summary['rounds']} rounds;"
          " bpf_stats ns per storm connection, median of rounds; each piece = the variant"
          " before it minus the variant without it):")
    for name, before, after in zip(names, ns, ns[1:]):
        print(f"  {name:72} {before - after:7.0f} ns  {bl.ratio(before - after, above_floor):5.0%}")
    print(f"  {'total above the floor':72} {above_floor:7.0f} ns")
    print("bpf_stats predicts, agent - floor:")
    for condition in chain[:-1]:
        print(f"  {condition:40} {conditions[condition]['predicted_gap_points']:+.1f} points")


def main() -> int:
    args = parse_args()
    bl.require_root("portwatch and hook_floor load BPF programs")
    require_committed()
    work = bl.work_dir(NAME, args.keep)
    source = add_worktree(work, args.keep)
    binaries = build_variants(source, work)
    summary_path = work / "summary.json"
    run_bench_cost(args, binaries, summary_path)
    print_pieces(json.loads(summary_path.read_text()))
    return 0


if __name__ == "__main__":
    bl.run_main(NAME, main)
