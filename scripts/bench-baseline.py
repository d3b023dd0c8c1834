#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""bench-baseline.py: what does `portwatch monitor` cost when it starts on a host with many live
sockets (the start-up "baseline" pass over every namespace's socket tables), and what does each
tracked socket cost afterwards (memory, and time in the reconciliation pass before a report)?

Each of --rounds rounds measures the monitor twice, the same way:
  empty: no extra sockets (whatever the host has anyway)
  farm:  while tests/bench/socket_farm holds --sockets live TCP sockets (default 100000) in its
         own network namespace: listeners on 127.0.0.1 and connected client/accepted pairs,
         about half of them connect()-allocated ports, spread over several processes
A measurement: start `portwatch monitor --json --stats-interval 0 --report-interval 0`, wait for
its ready line (printed once the BPF programs are attached and the baseline pass is over;
allowed 30 s plus 100 us per farm socket: at 1M sockets 30 s were not enough on a loaded
2-vCPU VM), wait until the main thread is back in epoll_wait, wait --settle seconds, read
VmRSS and VmHWM from /proc/PID/status, then SIGINT and wait for the exit. On SIGINT the
monitor runs one more reconciliation pass, prints the final report and the final stats line.

Reported per measurement:
  sockets    TCP+UDP sockets present in all network namespaces (counted with ss just before)
  ready      wall time from launching the monitor to its ready line, ms
  baseline   the start-up pass (stats reconciliation.baseline_ms): ready line -> baseline done
  rss, hwm   VmRSS / VmHWM --settle s after the baseline (hwm: the peak so far, the baseline
             pass included); peak: VmHWM of the whole run, the exit pass included (read every
             millisecond until the process is gone: rusage's maximum would include this
             script's own, which exec hands down)
  exit       wall time from SIGINT to the process being gone, ms (one reconciliation pass, the
             report, the stats line, detaching the BPF programs)
  last       the exit-time pass (reconciliation.last_ms), ms; added: sockets the passes added
             to the model (reconciliation.added; accepted sockets share their listener's port
             and are not counted, so the farm adds about SOCKETS/2)
  report     size of the final report line, bytes
and per tracked socket, per round: (rss_farm - rss_empty) / (added_farm - added_empty) in bytes
(likewise for hwm and peak), and last_ms / added_farm in microseconds (baseline_ms too).

Exit 0 when every measurement completed (a measurement, not a pass/fail check); 2 when something
failed (build, monitor or farm error, timeout). Must run as root (the monitor loads BPF
programs; the farm makes a network namespace).

  sudo python3 scripts/bench-baseline.py [--rounds 3] [--sockets 100000] [--settle 1]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

NAME = "bench-baseline"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=bl.positive_int, default=3)
    parser.add_argument("--sockets", type=bl.positive_int, default=100000,
                        help="live TCP sockets the farm holds (default 100000)")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds between the end of the baseline and the memory reading")
    parser.add_argument("--build", action="store_true",
                        help="build portwatch and socket_farm first")
    parser.add_argument("--build-dir", type=Path, default=bl.REPO / "build")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data")
    args = parser.parse_args()
    if args.settle < 0:
        parser.error("--settle must be >= 0")
    return args


# ---- measuring ------------------------------------------------------------------------------

def count_sockets() -> int:
    """TCP and UDP sockets in every network namespace that has a process, all states."""
    seen, total = set(), 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            netns = os.readlink(entry / "ns/net")
        except OSError:
            continue
        if netns in seen:
            continue
        seen.add(netns)
        result = subprocess.run(["nsenter", "--target", entry.name, "--net", "ss", "-Htuan"],
                                capture_output=True, text=True)
        total += len(result.stdout.splitlines()) if result.returncode == 0 else 0
    return total


def hwm_kb(pid: int) -> int | None:
    """The process's VmHWM; None once it has no memory (exiting, a zombie) or is gone."""
    try:
        return bl.status_kb(pid, "VmHWM")["VmHWM"]
    except (OSError, bl.BenchError):
        return None


def reap(process: subprocess.Popen, timeout: float) -> tuple[int, int, int]:
    """Waits for the process to exit, reading its VmHWM meanwhile: (realtime ns when reaped,
    the last VmHWM read in kB, exit status). Not rusage's ru_maxrss: exec keeps the maximum of
    the image it replaces, here a vfork()ed copy of this script (~230 MiB once it has counted
    1M sockets with ss)."""
    deadline = time.monotonic() + timeout
    peak_kb = 0
    while time.monotonic() < deadline:
        peak_kb = max(peak_kb, hwm_kb(process.pid) or 0)  # before wait4: the last value read
        pid, status, _ = os.wait4(process.pid, os.WNOHANG)
        if pid:
            reaped = time.time_ns()
            process.returncode = os.waitstatus_to_exitcode(status)
            return reaped, peak_kb, process.returncode
        time.sleep(0.001)
    raise bl.BenchError(f"portwatch monitor did not exit within {timeout:.0f} s of SIGINT")


def ready_timeout(sockets: int) -> float:
    """Seconds allowed from launch to the ready line, the baseline pass included."""
    return 30 + sockets * 100e-6


def measure(portwatch: Path, settle: float, work: Path, name: str, sockets: int = 0) -> dict:
    """One monitor run as described in the header; its raw figures."""
    out, err = work / f"{name}.jsonl", work / f"{name}.err"
    out.touch()
    command = [str(portwatch), "monitor", "--json", "--stats-interval", "0",
               "--report-interval", "0"]
    launched_ns = time.time_ns()
    process = bl.start(command, out, err)
    bl.wait_for_line(process, out, lambda line: '"type":"ready"' in line, "portwatch monitor",
                     err, timeout=ready_timeout(sockets))
    bl.wait_for_event_loop(process.pid)  # the baseline pass is over
    time.sleep(settle)
    memory = bl.status_kb(process.pid, "VmRSS", "VmHWM")
    bl.cancel_cleanup(process.cleanup)
    cleanup = bl.at_cleanup(lambda: process.poll() is None and process.kill())
    sigint_ns = time.time_ns()
    process.send_signal(signal.SIGINT)
    reaped_ns, peak_kb, status = reap(process, 120)
    bl.cancel_cleanup(cleanup)
    if status != 0:
        raise bl.BenchError(f"portwatch monitor exited with status {status}: {bl.tail(err)}")
    return {"launched_ns": launched_ns, "sigint_ns": sigint_ns, "reaped_ns": reaped_ns,
            "peak_kb": peak_kb, "memory": memory, "output": out}


def start_farm(farm: Path, sockets: int, work: Path, name: str):
    ready = work / f"{name}.ready"
    err = work / f"{name}.err"
    process = bl.start([str(farm), "--new-netns", "--sockets", str(sockets), "--ready-file",
                        str(ready)], work / f"{name}.out", err)
    bl.cancel_cleanup(process.cleanup)
    process.cleanup = bl.at_cleanup(lambda: bl.stop(process, signal.SIGTERM, 30))
    deadline = time.monotonic() + 300
    while not (ready.exists() and ready.stat().st_size):
        if process.poll() is not None:
            raise bl.BenchError(f"socket_farm exited (status {process.returncode}) before it"
                                f" was ready: {bl.tail(err)}")
        if time.monotonic() > deadline:
            raise bl.BenchError("socket_farm was not ready within 300 s")
        time.sleep(0.1)
    return process, json.loads(ready.read_text())


def stop_farm(process: subprocess.Popen, err: Path) -> None:
    status = bl.stop(process, signal.SIGTERM, 60)
    if status is None:
        raise bl.BenchError("socket_farm did not exit within 60 s of SIGTERM")
    if status != 0:
        raise bl.BenchError(f"socket_farm exited with status {status}: {bl.tail(err)}")


# ---- analysis -------------------------------------------------------------------------------

def realtime_ns(ts: str) -> int:
    """RFC 3339 UTC with microseconds, as the monitor prints it, to ns since the epoch."""
    when = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
    when = when.replace(tzinfo=datetime.timezone.utc)
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def figures(raw: dict, sockets: int, missing_fields: set) -> dict:
    ready = final = None
    report_bytes = warnings = 0
    with open(raw["output"], "rb") as f:
        for line in f:
            event = json.loads(line)
            kind = event.get("type")
            if kind == "ready":
                ready = event
            elif kind == "report":
                report_bytes = len(line)  # the final report (the only one at interval 0)
            elif kind == "warning":
                warnings += 1
            elif kind == "stats" and event.get("final") is True:
                final = event
    if ready is None or final is None:
        raise bl.BenchError(f"{raw['output']}: no ready line or no final stats line")
    recon = final.get("reconciliation") or {}
    missing_fields.update(k for k in ("baseline_ms", "last_ms", "added") if k not in recon)
    return {"sockets": sockets,
            "ready_ms": (realtime_ns(ready["ts"]) - raw["launched_ns"]) / 1e6,
            "baseline_ms": recon.get("baseline_ms"), "last_ms": recon.get("last_ms"),
            "added": recon.get("added"), "rss_kb": raw["memory"]["VmRSS"],
            "hwm_kb": raw["memory"]["VmHWM"], "peak_kb": raw["peak_kb"],
            "exit_ms": (raw["reaped_ns"] - raw["sigint_ns"]) / 1e6,
            "report_bytes": report_bytes, "warnings": warnings}


def per_socket(empty: dict, full: dict) -> dict | None:
    if empty["added"] is None or full["added"] is None:
        return None
    delta = full["added"] - empty["added"]
    if delta <= 0:
        return None
    entry = {"tracked": delta}
    for key in ("rss", "hwm", "peak"):
        entry[key] = 1024 * (full[f"{key}_kb"] - empty[f"{key}_kb"]) / delta
    for key in ("last_ms", "baseline_ms"):
        value = full[key]
        entry[key] = None if value is None else 1000 * value / full["added"]
    return entry


def print_row(n: int, label: str, r: dict) -> None:
    mib = 1 / 1024
    print(f"{n:5}  {label:5} {r['sockets']:8}  {r['ready_ms']:5.0f}"
          f"  {bl.fmt(r['baseline_ms'], '.1f', 8)}  {r['rss_kb'] * mib:5.1f}"
          f"  {r['hwm_kb'] * mib:5.1f}  {r['peak_kb'] * mib:5.1f}  {r['exit_ms']:6.0f}"
          f"  {bl.fmt(r['last_ms'], '.1f', 6)}  {bl.fmt(r['added'], 'd', 6)}"
          f"  {r['report_bytes']:6}  {r['warnings']:4}")


def print_per_socket(entries: list[dict]) -> None:
    print()
    if not entries:
        print("per tracked socket: n/a (no reconciliation.added in the stats, or nothing added)")
        return
    print("per tracked socket (farm - empty, divided by the extra sockets tracked):")
    print("round  tracked   rss B   hwm B  peak B   last_ms/added us   baseline_ms/added us")
    for n, e in enumerate(entries, 1):
        print(f"{n:5}  {e['tracked']:7}  {e['rss']:6.0f}  {e['hwm']:6.0f}  {e['peak']:6.0f}"
              f"   {bl.fmt(e['last_ms'], '.2f', 16)}   {bl.fmt(e['baseline_ms'], '.2f', 20)}")

    def median(key):
        return bl.median(e[key] for e in entries)

    print(f"median: {bl.fmt(median('rss'), '.0f')} B RSS, {bl.fmt(median('hwm'), '.0f')} B peak"
          f" during the baseline, {bl.fmt(median('peak'), '.0f')} B peak incl. exit;"
          f" {bl.fmt(median('last_ms'), '.2f')} us per tracked socket in a reconciliation pass,"
          f" {bl.fmt(median('baseline_ms'), '.2f')} us in the baseline")


def print_header(args: argparse.Namespace) -> None:
    print("== portwatch baseline benchmark")
    print(f"measuring: 'portwatch monitor --json' starting on a host without and with"
          f" {args.sockets} extra\n  live TCP sockets (socket_farm, own network namespace):"
          " start-up baseline pass time and\n  memory, then the exit-time reconciliation pass"
          " and report; per tracked socket figures")
    for line in bl.machine_lines():
        print(line)
    print(f"runs:      {args.rounds} rounds x (empty, farm); memory read {args.settle:g} s after"
          " the baseline")


def main() -> int:
    args = parse_args()
    bl.require_root("portwatch loads BPF programs")
    bl.require_tools("ss", "nsenter")
    bl.build(args.build_dir, "portwatch", "socket_farm", skip=not args.build)
    portwatch = bl.executable(args.build_dir / "portwatch")
    farm = bl.executable(args.build_dir / "tests/socket_farm", " (PORTWATCH_TESTS off?)")
    work = bl.work_dir(NAME, args.keep)
    print_header(args)
    print("   warm-up run", flush=True)
    measure(portwatch, args.settle, work, "warmup")
    missing_fields: set = set()
    rows, farm_info = [], []
    for n in range(1, args.rounds + 1):
        sockets = count_sockets()
        empty = figures(measure(portwatch, args.settle, work, f"empty-{n}"), sockets,
                        missing_fields)
        process, info = start_farm(farm, args.sockets, work, f"farm-{n}")
        sockets = count_sockets()
        full = figures(measure(portwatch, args.settle, work, f"farm-{n}-monitor", args.sockets),
                       sockets, missing_fields)
        stop_farm(process, work / f"farm-{n}.err")
        rows.append((empty, full))
        farm_info.append(info)
        print(f"   round {n}/{args.rounds} done (farm set-up {info['setup_s']} s)", flush=True)
        time.sleep(1)  # the farm's namespace is torn down asynchronously
    print_results(rows, farm_info, missing_fields)
    return 0


def print_results(rows: list[tuple[dict, dict]], farm_info: list[dict],
                  missing_fields: set) -> None:
    print()
    print("round  run    sockets  ready  baseline   rss    hwm   peak    exit    last   added"
          "  report  warn")
    print("                          ms        ms   MiB    MiB    MiB      ms      ms"
          "           bytes")
    entries = []
    for n, (empty, full) in enumerate(rows, 1):
        print_row(n, "empty", empty)
        print_row(n, "farm", full)
        entry = per_socket(empty, full)
        if entry:
            entries.append(entry)
    print("(sockets: TCP+UDP sockets in all network namespaces before the monitor started; ready:"
          " launch -> ready line;\n baseline: ready line -> baseline pass done; rss/hwm:"
          " VmRSS/VmHWM after the baseline; peak: max RSS of the\n whole run, exit pass"
          " included; exit: SIGINT -> exited, including the last pass; added: sockets added\n"
          " to the model by the passes; report: bytes of the final report line; warn: warning"
          " lines printed)")
    farm = farm_info[0]
    print(f"farm: {farm['sockets']} sockets ({farm['listeners']} listeners, {farm['clients']}"
          f" client/accepted pairs) in {farm['workers']} processes; set-up"
          f" {bl.median(f['setup_s'] for f in farm_info):.2f} s (median)")
    print_per_socket(entries)
    if missing_fields:
        print(f"note: the final stats line lacks reconciliation {', '.join(sorted(missing_fields))};"
              " those figures are n/a")


if __name__ == "__main__":
    bl.run_main(NAME, main)
