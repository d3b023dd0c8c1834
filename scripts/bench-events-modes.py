#!/usr/bin/env python3
"""bench-events-modes.py: what each `monitor --events` mode costs during a connect storm.

Runs ROUNDS rounds; each round runs the loopback connect storm (tests/bench/connect_storm.cpp)
once alone and once under `portwatch monitor --json --events MODE --output FILE` for each mode,
in a rotating order to cancel drift. Per mode it prints the median storm ratio (monitored rate /
the round's baseline rate), the monitor's CPU time per event seen (user + system, from
/proc/PID/stat, over the storm), the bytes written per second of storm, and the events lost
(the final stats line's lost totals: any loss makes the exit status 1).

Environment: ROUNDS (default 3), SECONDS (default 5), BUILD_DIR (default build). Run as root.
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("all", "failures", "none")
REPO = Path(__file__).resolve().parent.parent


def env_int(name, default):
    value = os.environ.get(name, str(default))
    if not value.isdigit() or int(value) <= 0:
        sys.exit(f"bench-events-modes: {name} must be a positive integer, not {value!r}")
    return int(value)


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def storm(build, seconds):
    out = subprocess.run([str(build / "tests/connect_storm"), "--seconds", str(seconds),
                          "--new-netns"], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def wait_for_ready(path, process):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.exists() and '"type":"ready"' in path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            sys.exit(f"bench-events-modes: the monitor exited with {process.returncode}")
        time.sleep(0.05)
    sys.exit("bench-events-modes: no ready line within 30 s")


def final_stats(path):
    for line in reversed(path.read_text(errors="replace").splitlines()):
        event = json.loads(line)
        if event.get("type") == "stats" and event.get("final"):
            return event
    sys.exit("bench-events-modes: no final stats line")


def monitored(build, seconds, mode, work):
    output = work / f"{mode}.json"
    output.unlink(missing_ok=True)
    monitor = subprocess.Popen([str(build / "portwatch"), "monitor", "--json", "--events", mode,
                                "--stats-interval", "0", "--report-interval", "0",
                                "--output", str(output)], stderr=subprocess.DEVNULL)
    try:
        wait_for_ready(output, monitor)
        size_before = output.stat().st_size
        cpu_before = cpu_seconds(monitor.pid)
        result = storm(build, seconds)
        cpu = cpu_seconds(monitor.pid) - cpu_before
    finally:
        monitor.send_signal(signal.SIGINT)
        monitor.wait(timeout=30)
    stats = final_stats(output)
    seen = sum(kind["seen"] for kind in stats["events"].values())
    return {"rate": result["rate"], "cpu_us_per_event": cpu * 1e6 / max(seen, 1),
            "bytes_per_s": (output.stat().st_size - size_before) / result["seconds"],
            "lost": stats["lost_total"], "seen": seen}


def main():
    rounds, seconds = env_int("ROUNDS", 3), env_int("SECONDS", 5)
    build = REPO / os.environ.get("BUILD_DIR", "build")
    subprocess.run(["cmake", "--build", str(build), "--target", "portwatch", "connect_storm"],
                   check=True, stdout=subprocess.DEVNULL)
    print(f"== portwatch --events modes: {rounds} rounds x (baseline + {len(MODES)} modes), "
          f"{seconds}s storms, {os.cpu_count()} CPUs, kernel {os.uname().release}")
    storm(build, 1)  # warm-up, discarded
    figures = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        for n in range(rounds):
            baseline = storm(build, seconds)["rate"]
            order = MODES[n % len(MODES):] + MODES[:n % len(MODES)]
            for mode in order:
                run = monitored(build, seconds, mode, Path(tmp))
                run["ratio"] = run["rate"] / baseline
                figures[mode].append(run)
                print(f"round {n + 1} {mode:8} ratio {run['ratio']:.3f}  "
                      f"{run['cpu_us_per_event']:.2f} us CPU/event  "
                      f"{run['bytes_per_s'] / 1e6:.2f} MB/s  seen {run['seen']} lost {run['lost']}")
    print("median   mode     ratio  us CPU/event  MB/s written")
    lost = 0
    for mode, runs in figures.items():
        lost += sum(r["lost"] for r in runs)
        print(f"         {mode:8} {statistics.median(r['ratio'] for r in runs):.3f}  "
              f"{statistics.median(r['cpu_us_per_event'] for r in runs):12.2f}  "
              f"{statistics.median(r['bytes_per_s'] for r in runs) / 1e6:12.2f}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
