#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""What each hook set costs, measured on the kernels of the matrix under qemu.

In each VM (scripts/vmtest.py boots it), interleaved rounds of five conditions, the order
rotating by one every round:
  base                   nothing attached
  floor_tracepoint       empty programs on portwatch's tracepoint set (tests/bench/hook_floor)
  floor_fexit            empty programs on portwatch's fexit set
  portwatch_tracepoint   portwatch monitor --json --hooks tracepoint, writing every event to a file
  portwatch_fexit        portwatch monitor --json --hooks fexit, likewise
and with --idle two more, a monitor filtered to a process that allocates nothing (--pid 1, the
VM's init), which must send no record at all (issue 32: the filters work in the kernel):
  idle_tracepoint        portwatch monitor --json --hooks tracepoint --pid 1
  idle_fexit             portwatch monitor --json --hooks fexit --pid 1
and in each condition two loads, one after the other: the loopback connect storm
(tests/bench/connect_storm, every connection one event) and a getppid() loop that allocates
no port (tests/bench/syscall_loop). Prints, per kernel, the median rate of each and its ratio
to base, and what the monitor lost and saw (each storm connection is one allocation; a
storm with its listener makes connections + 1); for idle_*, the records the kernel side sent
of every type (0 is right). Under TCG (no KVM here) the figures are indicative only.

  scripts/bench-vm.py [--kernel 6.1 ...] [--rounds 3] [--seconds 3] [--idle]

Exit 0 whatever the figures are (a measurement); 1 if a run failed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vmtest  # noqa: E402

CONDITIONS = ["base", "floor_tracepoint", "floor_fexit", "portwatch_tracepoint", "portwatch_fexit"]
IDLE_CONDITIONS = ["idle_tracepoint", "idle_fexit"]
COMMON_FLOOR = "floor_destroy floor_sock_create floor_sock_release floor_sockops_state"
FLOOR_PROGRAMS = {
    "floor_tracepoint": "floor_sys_enter floor_sys_exit " + COMMON_FLOOR,
    "floor_fexit": "floor_fexit_inet_hash_connect floor_fexit_inet6_hash_connect "
                   "floor_fexit_inet_csk_get_port floor_fexit_udp_lib_get_port "
                   "floor_fexit_udp_disconnect floor_fexit_inet_dgram_connect " + COMMON_FLOOR,
}

# Runs inside the VM (bash). Prints one "RESULT cond storm-json loop-json lost" line per run.
IN_VM = r"""
set -u
cd /tmp
STORM=@BUILD@/tests/connect_storm LOOP=@BUILD@/tests/syscall_loop
FLOOR=@BUILD@/tests/hook_floor OBJECT=@BUILD@/bpf/hook_floor.bpf.o PORTWATCH=@BUILD@/portwatch
declare -A FLOOR_PROGRAMS=(@FLOOR_PROGRAMS@)
conditions=(@CONDITIONS@)
wait_ready() {  # file
  for _ in $(seq 1 300); do grep -q ready "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "vmbench: $1 never said ready: $(cat "$1" "$1.err" 2>/dev/null)"; return 1
}
run_condition() {  # condition
  local cond=$1 pid="" lost=0
  rm -f /tmp/out /tmp/out.err
  case $cond in
    base) ;;
    floor_*) $FLOOR --object $OBJECT ${FLOOR_PROGRAMS[$cond]} >/tmp/out 2>/tmp/out.err & pid=$!
             wait_ready /tmp/out || return 1 ;;
    portwatch_*) $PORTWATCH monitor --json --hooks ${cond#portwatch_} --stats-interval 0 \
                   --report-interval 0 --output /tmp/out 2>/tmp/out.err & pid=$!
                 wait_ready /tmp/out || return 1 ;;
    idle_*) $PORTWATCH monitor --json --hooks ${cond#idle_} --pid 1 --stats-interval 0 \
              --report-interval 0 --output /tmp/out 2>/tmp/out.err & pid=$!
            wait_ready /tmp/out || return 1 ;;
  esac
  storm=$($STORM --seconds @SECONDS@ --new-netns) || { echo "vmbench: storm failed"; return 1; }
  loop=$($LOOP --seconds @SECONDS@) || return 1
  if [ -n "$pid" ]; then kill -INT $pid; wait $pid; fi
  case $cond in
    portwatch_*) stats=$(grep '"type":"stats"' /tmp/out | tail -1)
                 lost=$(echo "$stats" | grep -o '"lost_total":[0-9]*' | cut -d: -f2)
                 seen=$(echo "$stats" | grep -o '"allocate":{"seen":[0-9]*' | cut -d: -f3)
                 lost="${lost:-?}/${seen:-?}" ;;
    idle_*) stats=$(grep '"type":"stats"' /tmp/out | tail -1)
            sent=$(echo "$stats" | grep -o '"seen":[0-9]*' | awk -F: '{n += $2} END {print n + 0}')
            lost="sent:${sent}" ;;
  esac
  echo "RESULT $cond $storm $loop $lost"
}
$STORM --seconds 1 --new-netns >/dev/null
for round in $(seq 0 $((@ROUNDS@ - 1))); do
  n=${#conditions[@]}
  for i in $(seq 0 $((n - 1))); do
    run_condition "${conditions[$(( (i + round) % n ))]}" >>/tmp/results || echo "FAILED ${conditions[$(( (i + round) % n ))]}" >>/tmp/results
  done
done
{ echo VMTEST-REPORT-BEGIN; cat /tmp/results; echo VMTEST-REPORT-END; } >/dev/ttyS1
"""


def in_vm_script(build: Path, rounds: int, seconds: float, conditions: list[str]) -> str:
    floor = " ".join(f'[{name}]="{programs}"' for name, programs in FLOOR_PROGRAMS.items())
    return (IN_VM.replace("@BUILD@", str(build)).replace("@FLOOR_PROGRAMS@", floor)
            .replace("@CONDITIONS@", " ".join(conditions)).replace("@ROUNDS@", str(rounds))
            .replace("@SECONDS@", str(seconds)))


def summarize(kernel: vmtest.Kernel, release: str, text: str, conditions: list[str]) -> bool:
    storm: dict[str, list[float]] = {c: [] for c in conditions}
    loop: dict[str, list[float]] = {c: [] for c in conditions}
    lost: dict[str, list[str]] = {c: [] for c in conditions}
    ok = True
    for line in text.splitlines():
        parts = line.split()
        if parts[:1] == ["FAILED"]:
            print(f"  {kernel.name}: {' '.join(parts[1:])} failed in a round")
            ok = False
        if parts[:1] != ["RESULT"] or len(parts) != 5:
            continue
        cond = parts[1]
        storm[cond].append(json.loads(parts[2])["rate"])
        loop[cond].append(json.loads(parts[3])["rate"])
        connections = json.loads(parts[2])["connections"]
        lost[cond].append(f"{parts[4]}/{connections}")
    base_storm = statistics.median(storm["base"]) if storm["base"] else 0
    base_loop = statistics.median(loop["base"]) if loop["base"] else 0
    print(f"{kernel.name} ({release}), under TCG: indicative only")
    print(f"  {'condition':<22} {'storm conn/s':>12} {'ratio':>6} {'getppid/s':>11} {'ratio':>6}"
          "  lost/allocations seen/storm connections, per round")
    for cond in conditions:
        if not storm[cond]:
            print(f"  {cond:<22} no run")
            ok = False
            continue
        s, l = statistics.median(storm[cond]), statistics.median(loop[cond])
        print(f"  {cond:<22} {s:>12.0f} {s / base_storm if base_storm else 0:>6.3f} "
              f"{l:>11.0f} {l / base_loop if base_loop else 0:>6.3f}  "
              f"{','.join(lost[cond]) if cond.startswith(('portwatch', 'idle')) else '-'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, default=vmtest.REPO / os.environ.get("BUILD_DIR", "build"))
    parser.add_argument("--kernel", action="append", choices=[k.name for k in vmtest.KERNELS])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--cache", type=Path, default=vmtest.default_cache_dir())
    parser.add_argument("--idle", action="store_true",
                        help="also a monitor filtered to an idle pid, per hook set")
    args = parser.parse_args()
    conditions = CONDITIONS + (IDLE_CONDITIONS if args.idle else [])
    build = args.build.resolve()
    extra = tuple(str(build / "tests" / name)
                  for name in ("connect_storm", "syscall_loop", "hook_floor")) + (
                      str(build / "bpf" / "hook_floor.bpf.o"),)
    for path in extra:
        if not os.path.exists(path):
            print(f"bench-vm: {path} is not built (scripts/build.sh builds it)", file=sys.stderr)
            return 1
    ok = True
    for kernel in vmtest.KERNELS:
        if args.kernel and kernel.name not in args.kernel:
            continue
        try:
            files = vmtest.fetch_kernel(kernel, args.cache)
            with tempfile.TemporaryDirectory(prefix=f"bench-vm-{kernel.name}-") as work:
                script = in_vm_script(build, args.rounds, args.seconds, conditions)
                initramfs = vmtest.build_initramfs(files, build, Path(work), [], {"CI": ""},
                                                   script, extra)
                console = build / "vmtest" / f"bench-{kernel.name}.log"
                console.parent.mkdir(parents=True, exist_ok=True)
                start = time.monotonic()
                text = vmtest.boot(files, initramfs, Path(work), console, 3600)
                print(f"  ({time.monotonic() - start:.0f} s; console: {console})")
                ok &= summarize(kernel, files.release, text, conditions)
        except vmtest.Fail as error:
            print(f"{kernel.name}: {error}")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
