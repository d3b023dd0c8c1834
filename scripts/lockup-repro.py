#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Reproduces issue 31: "BUG: soft lockup" at syscall_trace_enter under qemu (tracepoint hooks).

Shown 2026-12-07 (qemu 7.2.22, loaded 2-core host): with -accel tcg (MTTCG) -smp 2 the lockup
came in 2 of 9 boots on 6.1 (~190 cycles) and 3 of 3 on 5.10 (after 10-29 cycles), each CPU
trapping on an int3 at the patch site while memory there already held the final instruction
(stale translated code); with -accel tcg,thread=single none in 4 boots/100 cycles (6.1) and
2 boots/60 cycles (5.10), with -smp 1 none in 1 boot/30 cycles (6.1).

Boots a kernel of vmtest.py's matrix with vmtest.py's initramfs and, instead of the suite, runs
in the guest: one syscall loop per guest CPU (build/tests/syscall_loop: getppid() in a tight
loop, so every CPU sits in syscall_trace_enter when its static branch is live-patched) and
`portwatch monitor --hooks tracepoint --duration D` started and stopped CYCLES times (each one
attaches and detaches tp_btf/sys_enter and sys_exit, so the kernel patches the syscall
tracepoint's static branch with text_poke_bp twice per cycle). Prints per boot whether the
console shows "BUG: soft lockup", the cycles done and their seconds, and a summary.

The qemu options are parameters (--accel, --cpu, --smp, --icount), the rest as vmtest.boot().
--host-hog N runs N `yes > /dev/null` on the host during the boots (the starvation hypothesis).

  scripts/lockup-repro.py [--kernel 6.1] [--runs K] [--cycles M] [--accel tcg[,thread=single]]
                          [--smp 2] [--cpu max] [--icount SHIFT] [--host-hog N] [--logs DIR]
"""
from __future__ import annotations

import argparse
import os
import resource
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))
import vmtest  # noqa: E402

LOCKUP = "BUG: soft lockup"
LOCKUP_LINE = re.compile(r"BUG: soft lockup - CPU#(\d+) stuck for (\d+)s!")

# The guest side. bash runs it (vmtest's /init: `bash /vmtest/command; poweroff -f`).
GUEST = r"""
PW=@PORTWATCH@
LOOP=@SYSCALL_LOOP@
CYCLES=@CYCLES@
DURATION=@DURATION@
LOOPS=@LOOPS@
up() { cut -d' ' -f1 /proc/uptime; }
echo "REPRO: cpus $(nproc), loops $LOOPS, cycles $CYCLES, duration $DURATION"
cat /proc/sys/kernel/watchdog_thresh | sed 's/^/REPRO: watchdog_thresh /'
pids=""
for n in $(seq 1 $LOOPS); do
  $LOOP --seconds 3600 > /dev/null & pids="$pids $!"
done
start=$(up)
done_cycles=0
for i in $(seq 1 $CYCLES); do
  $PW monitor --hooks tracepoint --duration $DURATION > /dev/null 2> /tmp/pw.err
  status=$?
  if [ $status -ne 0 ]; then echo "REPRO: cycle $i exit $status: $(head -c 300 /tmp/pw.err)"; fi
  done_cycles=$i
  echo "REPRO: cycle $i at $(up)"
done
end=$(up)
kill $pids
echo "REPRO-DONE cycles=$done_cycles start=$start end=$end"
"""


def guest_command(args) -> str:
    text = GUEST
    for key, value in (("PORTWATCH", args.build / "portwatch"),
                       ("SYSCALL_LOOP", args.build / "tests" / "syscall_loop"),
                       ("CYCLES", args.cycles), ("DURATION", args.duration),
                       ("LOOPS", args.loops if args.loops is not None else args.smp)):
        text = text.replace(f"@{key}@", str(value))
    return text


def qemu_command(args, files: vmtest.KernelFiles, initramfs: Path, console: Path,
                 report: Path) -> list[str]:
    extra = ("-icount", args.icount) if args.icount is not None else ()
    return vmtest.qemu_command(files, initramfs, console, report, accel=args.accel, cpu=args.cpu,
                               smp=args.smp, extra=extra, append=args.append or "")


def host_cpu() -> tuple[int, int]:
    """(busy, idle) clock ticks of the whole host, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields[:8]) - idle, idle


def boot_once(args, files, initramfs: Path, work: Path, console: Path) -> dict:
    """One boot: runs until the guest powers off, a soft lockup (then --grace seconds more for
    the other CPU's report) or --timeout. Returns what the console showed."""
    command = qemu_command(args, files, initramfs, console, work / "report.out")
    host_before = host_cpu()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    qemu = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen_lockup = None
    how = "powered off"
    while True:
        try:
            output = qemu.communicate(timeout=2)[0]
            if qemu.returncode != 0:
                how = f"qemu exited {qemu.returncode}: {output.strip()[:200]}"
            break
        except subprocess.TimeoutExpired:
            text = console.read_text(errors="replace") if console.exists() else ""
            now = time.monotonic()
            if seen_lockup is None and LOCKUP in text:
                seen_lockup = now
            if seen_lockup is not None and now - seen_lockup > args.grace:
                how = "stopped after a soft lockup"
            elif now - started > args.timeout:
                how = f"timeout ({args.timeout} s)"
            else:
                continue
            qemu.kill()
            qemu.communicate()
            break
    wall = time.monotonic() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    host_after = host_cpu()
    qemu_cpu = (children.ru_utime - children_before.ru_utime
                + children.ru_stime - children_before.ru_stime)
    host_busy = (host_after[0] - host_before[0]) / os.sysconf("SC_CLK_TCK")
    text = console.read_text(errors="replace") if console.exists() else ""
    cycles = [(int(c), float(t)) for c, t in re.findall(r"REPRO: cycle (\d+) at ([\d.]+)", text)]
    done = re.search(r"REPRO-DONE cycles=(\d+) start=([\d.]+) end=([\d.]+)", text)
    start_match = re.search(r"vmtest: kernel .* up", text)
    result = {
        "wall": wall, "how": how, "lockups": LOCKUP_LINE.findall(text),
        "cycles": cycles[-1][0] if cycles else 0,
        "guest_seconds": (float(done.group(3)) - float(done.group(2))) if done
        else (cycles[-1][1] - cycles[0][1] if len(cycles) > 1 else 0.0),
        "errors": re.findall(r"REPRO: cycle \d+ exit .*", text),
        "booted": bool(start_match),
        "console": console,
        # host cores used by this qemu, and by everything else on the host (hogs included)
        "qemu_cores": qemu_cpu / wall, "other_cores": max(0.0, host_busy - qemu_cpu) / wall,
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", default="6.1", choices=[k.name for k in vmtest.KERNELS])
    parser.add_argument("--build", type=Path, default=vmtest.REPO / "build")
    parser.add_argument("--cache", type=Path, default=vmtest.default_cache_dir())
    parser.add_argument("--logs", type=Path, default=Path("/tmp/lockup-repro"))
    parser.add_argument("--runs", type=int, default=3, help="boots (K)")
    parser.add_argument("--cycles", type=int, default=30, help="attach/detach cycles per boot (M)")
    parser.add_argument("--duration", default="0.3", help="portwatch monitor --duration")
    parser.add_argument("--loops", type=int, default=None,
                        help="syscall loops in the guest (default: one per guest CPU)")
    parser.add_argument("--accel", default="tcg", help="e.g. tcg, tcg,thread=single")
    parser.add_argument("--cpu", default="max")
    parser.add_argument("--smp", type=int, default=2)
    parser.add_argument("--icount", default=None, help="e.g. shift=auto (adds -icount)")
    parser.add_argument("--append", default="", help="more kernel command line")
    parser.add_argument("--host-hog", type=int, default=0,
                        help="run this many `yes > /dev/null` on the host during the boots")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per boot")
    parser.add_argument("--grace", type=int, default=30,
                        help="seconds to keep a locked-up guest running for more reports")
    parser.add_argument("--tag", default="", help="a name for this configuration's logs")
    args = parser.parse_args()
    args.build = args.build.resolve()
    kernel = next(k for k in vmtest.KERNELS if k.name == args.kernel)
    files = vmtest.fetch_kernel(kernel, args.cache)
    tag = args.tag or re.sub(r"[^\w.=-]+", "_", f"{args.kernel}-{args.accel}-{args.cpu}"
                                                    f"-smp{args.smp}-hog{args.host_hog}"
                                                    + (f"-icount{args.icount}" if args.icount else ""))
    args.logs.mkdir(parents=True, exist_ok=True)
    hogs = []
    total = {"runs": 0, "lockup_runs": 0, "cycles": 0, "guest_seconds": 0.0, "wall": 0.0}
    print(f"lockup-repro: {args.kernel} ({files.release}) qemu -accel {args.accel} -cpu {args.cpu}"
          f" -smp {args.smp}{' -icount ' + args.icount if args.icount else ''}; host hogs "
          f"{args.host_hog}; {args.runs} boots x {args.cycles} cycles", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="lockup-repro-") as work_dir:
            work = Path(work_dir)
            env = {"CI": "", "PORTWATCH_HOOKS": "tracepoint"}
            initramfs = vmtest.build_initramfs(
                files, args.build, work, [], env, guest_command(args),
                extra=(str(args.build / "tests" / "syscall_loop"),))
            for _ in range(args.host_hog):
                hogs.append(subprocess.Popen(["yes"], stdout=subprocess.DEVNULL))
            for run in range(1, args.runs + 1):
                console = args.logs / f"console-{tag}-{run}.log"
                console.unlink(missing_ok=True)
                r = boot_once(args, files, initramfs, work, console)
                total["runs"] += 1
                total["lockup_runs"] += bool(r["lockups"])
                total["cycles"] += r["cycles"]
                total["guest_seconds"] += r["guest_seconds"]
                total["wall"] += r["wall"]
                lockups = ", ".join(f"CPU#{c} {s}s" for c, s in r["lockups"]) or "none"
                print(f"  boot {run}: soft lockup: {lockups}; cycles {r['cycles']}/{args.cycles}"
                      f" in {r['guest_seconds']:.1f} s (guest clock); {r['how']}; "
                      f"wall {r['wall']:.0f} s; host cores: qemu {r['qemu_cores']:.2f}, "
                      f"others {r['other_cores']:.2f}; console {console}"
                      + (f"; {len(r['errors'])} cycle(s) failed: {r['errors'][0]}"
                         if r["errors"] else ""), flush=True)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    print(f"lockup-repro: {tag}: soft lockup in {total['lockup_runs']} of {total['runs']} boots;"
          f" {total['cycles']} cycles in {total['guest_seconds']:.0f} s guest time "
          f"({total['wall']:.0f} s wall)", flush=True)
    return 1 if total["lockup_runs"] else 0


if __name__ == "__main__":
    sys.exit(main())
