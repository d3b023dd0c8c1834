#!/usr/bin/env bash
# bench-baseline.sh: what does `portwatch monitor` cost when it starts on a host with many live
# sockets (the start-up "baseline" pass over every namespace's socket tables), and what does each
# tracked socket cost afterwards (memory, and time in the reconciliation pass before a report)?
#
# Each of ROUNDS rounds measures the monitor twice, the same way:
#   empty: no extra sockets (whatever the host has anyway)
#   farm:  while tests/bench/socket_farm.cpp holds SOCKETS live TCP sockets (default 100000) in
#          its own network namespace: listeners on 127.0.0.1 and connected client/accepted pairs,
#          about half of them connect()-allocated ports, spread over several processes
# A measurement: start `portwatch monitor --json --stats-interval 0 --report-interval 0`, wait
# for its ready line (printed once the BPF programs are attached, just before the baseline), wait
# until the baseline pass is over (the main thread is back in epoll_wait), wait SETTLE seconds,
# read VmRSS and VmHWM from /proc/PID/status, then SIGINT and wait for the exit. On SIGINT the
# monitor runs one more reconciliation pass, prints the final report and the final stats line.
#
# Reported per measurement:
#   sockets    TCP+UDP sockets present in all network namespaces (counted with ss just before)
#   ready      wall time from launching the monitor to its ready line, ms
#   baseline   the start-up pass (stats reconciliation.baseline_ms): ready line -> baseline done
#   rss, hwm   VmRSS / VmHWM SETTLE s after the baseline (hwm: the peak so far, the baseline pass
#              included); peak: max RSS of the whole run, the exit pass included (wait4 rusage)
#   exit       wall time from SIGINT to the process being gone, ms (one reconciliation pass, the
#              report, the stats line, detaching the BPF programs)
#   last       the exit-time pass (reconciliation.last_ms), ms; added: sockets the passes added
#              to the model (reconciliation.added; accepted sockets share their listener's port
#              and are not counted, so the farm adds about SOCKETS/2)
#   report     size of the final report line, bytes
# and per tracked socket, per round: (rss_farm - rss_empty) / (added_farm - added_empty) in bytes
# (likewise for hwm and peak), and last_ms / added_farm in microseconds (baseline_ms too).
#
# Exit 0 when every measurement completed (this is a measurement, not a pass/fail check); 1 when
# something failed (build, monitor or farm error, timeout).
#
# Environment: ROUNDS (default 3), SOCKETS (default 100000), SETTLE (default 1, seconds between
# the end of the baseline and the memory reading), BUILD_DIR (default build, relative to the repo
# root), KEEP=1 (keep the temporary data directory).
#
# Must run as root (the monitor loads BPF programs; the farm makes a network namespace).
set -euo pipefail

BENCH_NAME=bench-baseline
# shellcheck source=lib/bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-common.sh"

rounds=${ROUNDS:-3}
sockets=${SOCKETS:-100000}
settle=${SETTLE:-1}
build_dir=${BUILD_DIR:-build}

require_positive_integer ROUNDS "$rounds"
require_positive_integer SOCKETS "$sockets"
[[ $settle =~ ^[0-9]+([.][0-9]+)?$ ]] || die "SETTLE must be a number of seconds (got '$settle')"
require_root "portwatch loads BPF programs"
require_tools python3 ss nsenter
[[ -n ${EPOCHREALTIME:-} ]] || die "bash 5 or newer is required (EPOCHREALTIME)"

bench_enter_repo
bench_build "$build_dir" portwatch socket_farm
portwatch=$build_dir/portwatch
farm=$build_dir/tests/socket_farm
[[ -x $portwatch ]] || die "$portwatch was not built"
[[ -x $farm ]] || die "$farm was not built (is PORTWATCH_TESTS off in $build_dir?)"
if ! grep -q baseline_ms userspace/output/json_format.cpp 2>/dev/null; then
    echo "note: this portwatch may not report reconciliation.baseline_ms/last_ms; missing" \
        "figures show as n/a"
fi

# ---- temporary data and cleanup ------------------------------------------------------------
bench_make_tmp
launcher_pid=""
monitor_pid=""
farm_pid=""

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $monitor_pid ]] && kill -0 "$monitor_pid" 2>/dev/null; then
        kill -INT "$monitor_pid" 2>/dev/null || true
    fi
    [[ -z $launcher_pid ]] || stop_process "$launcher_pid" TERM 100 || true
    [[ -z $monitor_pid ]] || kill -KILL "$monitor_pid" 2>/dev/null || true
    [[ -z $farm_pid ]] || stop_process "$farm_pid" TERM 300 || true
    bench_remove_tmp
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_us() {
    echo "${EPOCHREALTIME/[.,]/}"
}

# TCP and UDP sockets in every network namespace that has a process, all states.
count_sockets() {
    local total=0 pid link n
    declare -A seen=()
    for pid in /proc/[0-9]*; do
        link=$(readlink "$pid/ns/net" 2>/dev/null) || continue
        [[ -z ${seen[$link]:-} ]] || continue
        seen[$link]=1
        n=$(nsenter --target "${pid#/proc/}" --net ss -Htuan 2>/dev/null | wc -l) || n=0
        total=$((total + n))
    done
    echo "$total"
}

# "utime+stime" of a process, in clock ticks (empty if it is gone). Builtins only: this runs
# every few ms while the monitor works, on a machine with few CPUs.
cpu_ticks() {
    local stat fields
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 0
    read -r -a fields <<<"${stat##*) }"
    echo $((fields[11] + fields[12]))
}

# The launcher starts the monitor and records, in realtime ns, when it did so and when the monitor
# was reaped, plus its exit status and maximum RSS (wait4 rusage, kB): NAME.launch, NAME.exit.
launcher_code='
import os, subprocess, sys, time
base, cmd = sys.argv[1], sys.argv[2:]
with open(base + ".jsonl", "wb") as out, open(base + ".err", "wb") as err:
    launched = time.time_ns()
    child = subprocess.Popen(cmd, stdout=out, stderr=err)
with open(base + ".launch", "w") as f:
    f.write(f"{launched} {child.pid}\n")
_, status, usage = os.wait4(child.pid, 0)
reaped = time.time_ns()
with open(base + ".exit", "w") as f:
    f.write(f"{reaped} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}\n")
'

# measure NAME: one monitor run as described in the header; results in $tmp/NAME.*
measure() {
    local base=$tmp/$1
    python3 -c "$launcher_code" "$base" "$portwatch" monitor --json --stats-interval 0 \
        --report-interval 0 &
    launcher_pid=$!

    local waited=0
    until [[ -s $base.launch ]] && grep -q '"type":"ready"' "$base.jsonl" 2>/dev/null; do
        if ! kill -0 "$launcher_pid" 2>/dev/null; then
            wait "$launcher_pid" || true
            launcher_pid=""
            die "portwatch monitor exited before its ready line: $(cat "$base.err" 2>/dev/null)"
        fi
        ((waited++ < 600)) || die "portwatch monitor printed no ready line within 30 s"
        sleep 0.05 # the ready time comes from the line's timestamp, not from this loop
    done
    monitor_pid=$(cut -d' ' -f2 "$base.launch")

    # The baseline is over when the main thread first waits in epoll_wait (the event loop); if
    # wchan cannot tell, when it has used no CPU for a second.
    local wchan ticks last_ticks="" idle=0
    waited=0
    while true; do
        wchan="" # the file has no newline: read fails at EOF but sets wchan
        read -r wchan 2>/dev/null <"/proc/$monitor_pid/wchan" || [[ -n $wchan ]] ||
            die "portwatch monitor exited during the baseline: $(cat "$base.err")"
        [[ $wchan == *epoll* || $wchan == ep_poll* ]] && break
        ticks=$(cpu_ticks "$monitor_pid")
        if [[ -n $ticks && $ticks == "$last_ticks" ]]; then
            ((++idle < 20)) || break
        else
            idle=0
        fi
        last_ticks=$ticks
        ((waited++ < 2400)) || die "the baseline did not finish within 120 s"
        sleep 0.05
    done
    sleep "$settle"
    grep -E '^Vm(RSS|HWM):' "/proc/$monitor_pid/status" >"$base.status" ||
        die "portwatch monitor exited before the memory reading: $(cat "$base.err")"

    local sigint_us
    sigint_us=$(now_us)
    kill -INT "$monitor_pid"
    echo "$sigint_us" >"$base.sigint"
    waited=0
    while kill -0 "$launcher_pid" 2>/dev/null; do
        ((waited++ < 1200)) || die "portwatch monitor did not exit within 120 s of SIGINT"
        sleep 0.1
    done
    wait "$launcher_pid" || die "the launcher for portwatch monitor failed"
    launcher_pid=""
    monitor_pid=""
    [[ -s $base.exit ]] || die "no exit record for the monitor"
    local status
    status=$(cut -d' ' -f3 "$base.exit")
    [[ $status == 0 ]] || die "portwatch monitor exited with status $status: $(cat "$base.err")"
}

start_farm() {
    local base=$tmp/$1
    "$farm" --new-netns --sockets "$sockets" --ready-file "$base.ready" >"$base.out" \
        2>"$base.err" &
    farm_pid=$!
    local waited=0
    until [[ -s $base.ready ]]; do
        if ! kill -0 "$farm_pid" 2>/dev/null; then
            local status=0
            wait "$farm_pid" || status=$?
            farm_pid=""
            die "socket_farm exited (status $status) before it was ready: $(cat "$base.err")"
        fi
        ((waited++ < 3000)) || die "socket_farm was not ready within 300 s"
        sleep 0.1
    done
}

stop_farm() {
    local status=0 waited=0
    kill -TERM "$farm_pid"
    while kill -0 "$farm_pid" 2>/dev/null; do
        ((waited++ < 600)) || die "socket_farm did not exit within 60 s of SIGTERM"
        sleep 0.1
    done
    wait "$farm_pid" || status=$?
    farm_pid=""
    [[ $status -eq 0 ]] || die "socket_farm exited with status $status: $(cat "$1.err")"
}

# ---- header ----------------------------------------------------------------------------------
echo "== portwatch baseline benchmark"
echo "measuring: 'portwatch monitor --json' starting on a host without and with $sockets extra"
echo "  live TCP sockets (socket_farm, own network namespace): start-up baseline pass time and"
echo "  memory, then the exit-time reconciliation pass and report; per tracked socket figures"
echo "machine:   $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' \
    /proc/meminfo), kernel $(uname -r)"
echo "runs:      $rounds rounds x (empty, farm); memory read ${settle}s after the baseline"
echo "load:      $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) at start; other work on this" \
    "machine (and its sockets) shows in the figures"

# One discarded run so the first measured one does not pay for cold caches.
echo "   warm-up run"
measure warmup

for ((n = 1; n <= rounds; n++)); do
    count_sockets >"$tmp/empty-$n.sockets"
    measure "empty-$n"
    start_farm "farm-$n"
    count_sockets >"$tmp/farm-$n.sockets"
    measure "farm-$n"
    stop_farm "$tmp/farm-$n"
    echo "   round $n/$rounds done (farm set-up $(python3 -c \
        'import json, sys; print(json.load(open(sys.argv[1]))["setup_s"])' \
        "$tmp/farm-$n.ready") s)"
    sleep 1 # the farm's namespace is torn down asynchronously
done

# ---- analysis --------------------------------------------------------------------------------
python3 - "$tmp" "$rounds" "$sockets" <<'PYTHON'
import datetime
import json
import statistics
import sys

tmp, rounds, farm_sockets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
missing_fields = set()


def read_words(path):
    with open(path) as f:
        return f.read().split()


def realtime_ns(ts):
    """RFC 3339 UTC with microseconds, as the monitor prints it, to ns since the epoch."""
    when = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
    when = when.replace(tzinfo=datetime.timezone.utc)
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def run(name):
    base = f"{tmp}/{name}"
    launched_ns = int(read_words(base + ".launch")[0])
    reaped_ns, maxrss_kb, _ = (int(x) for x in read_words(base + ".exit"))
    sigint_ns = int(read_words(base + ".sigint")[0]) * 1000
    memory = {}
    with open(base + ".status") as f:
        for line in f:
            key, value = line.split(":")
            memory[key] = int(value.split()[0])  # kB
    ready = final = None
    report_bytes = 0
    types = {}
    with open(base + ".jsonl", "rb") as f:
        for raw in f:
            event = json.loads(raw)
            kind = event.get("type")
            types[kind] = types.get(kind, 0) + 1
            if kind == "ready":
                ready = event
            elif kind == "report":
                report_bytes = len(raw)  # the final report (the only one at --report-interval 0)
            elif kind == "stats" and event.get("final") is True:
                final = event
    if ready is None or final is None:
        raise SystemExit(f"{name}: no ready line or no final stats line in the monitor output")
    recon = final.get("reconciliation") or {}
    for key in ("baseline_ms", "last_ms", "added"):
        if key not in recon:
            missing_fields.add(key)
    result = {
        "ready_ms": (realtime_ns(ready["ts"]) - launched_ns) / 1e6,
        "baseline_ms": recon.get("baseline_ms"),
        "last_ms": recon.get("last_ms"),
        "added": recon.get("added"),
        "time_wait": recon.get("time_wait"),
        "rss_kb": memory["VmRSS"],
        "hwm_kb": memory["VmHWM"],
        "peak_kb": maxrss_kb,
        "exit_ms": (reaped_ns - sigint_ns) / 1e6,
        "report_bytes": report_bytes,
        "warnings": types.get("warning", 0),
        "lost": final.get("lost_total"),
    }
    with open(base + ".sockets") as f:
        result["sockets"] = int(f.read())
    return result


def fmt(value, spec, width):
    return f"{'n/a':>{width}}" if value is None else f"{value:{width}{spec}}"


def mib(kb):
    return kb / 1024


print()
print("round  run    sockets  ready  baseline   rss    hwm   peak    exit    last   added"
      "  report  warn")
print("                          ms        ms   MiB    MiB    MiB      ms      ms"
      "           bytes")
per_socket = []
farm_info = []
for n in range(1, rounds + 1):
    rows = {}
    for label in ("empty", "farm"):
        r = run(f"{label}-{n}")
        rows[label] = r
        print(f"{n:5}  {label:5} {r['sockets']:8}  {r['ready_ms']:5.0f}"
              f"  {fmt(r['baseline_ms'], '.1f', 8)}  {mib(r['rss_kb']):5.1f}"
              f"  {mib(r['hwm_kb']):5.1f}  {mib(r['peak_kb']):5.1f}  {r['exit_ms']:6.0f}"
              f"  {fmt(r['last_ms'], '.1f', 6)}  {fmt(r['added'], 'd', 6)}"
              f"  {r['report_bytes']:6}  {r['warnings']:4}")
    with open(f"{tmp}/farm-{n}.ready") as f:
        farm_info.append(json.load(f))
    empty, full = rows["empty"], rows["farm"]
    if empty["added"] is not None and full["added"] is not None:
        delta = full["added"] - empty["added"]
        if delta > 0:
            entry = {
                "tracked": delta,
                "rss": 1024 * (full["rss_kb"] - empty["rss_kb"]) / delta,
                "hwm": 1024 * (full["hwm_kb"] - empty["hwm_kb"]) / delta,
                "peak": 1024 * (full["peak_kb"] - empty["peak_kb"]) / delta,
            }
            for key in ("last_ms", "baseline_ms"):
                value = full[key]
                entry[key] = None if value is None else 1000 * value / full["added"]
            per_socket.append(entry)

print("(sockets: TCP+UDP sockets in all network namespaces before the monitor started; ready:"
      " launch -> ready line;\n baseline: ready line -> baseline pass done; rss/hwm: VmRSS/VmHWM"
      " after the baseline; peak: max RSS of the\n whole run, exit pass included; exit: SIGINT ->"
      " exited, including the last pass; added: sockets added\n to the model by the passes;"
      " report: bytes of the final report line; warn: warning lines printed)")
farm = farm_info[0]
print(f"farm: {farm['sockets']} sockets ({farm['listeners']} listeners, {farm['clients']}"
      f" client/accepted pairs) in {farm['workers']} processes; set-up"
      f" {statistics.median(f['setup_s'] for f in farm_info):.2f} s (median)")

print()
if per_socket:
    print("per tracked socket (farm - empty, divided by the extra sockets tracked):")
    print("round  tracked   rss B   hwm B  peak B   last_ms/added us   baseline_ms/added us")
    for n, e in enumerate(per_socket, 1):
        print(f"{n:5}  {e['tracked']:7}  {e['rss']:6.0f}  {e['hwm']:6.0f}  {e['peak']:6.0f}"
              f"   {fmt(e['last_ms'], '.2f', 16)}   {fmt(e['baseline_ms'], '.2f', 20)}")

    def median(key):
        values = [e[key] for e in per_socket if e[key] is not None]
        return statistics.median(values) if values else None

    print(f"median: {fmt(median('rss'), '.0f', 0)} B RSS, {fmt(median('hwm'), '.0f', 0)} B peak"
          f" during the baseline, {fmt(median('peak'), '.0f', 0)} B peak incl. exit;"
          f" {fmt(median('last_ms'), '.2f', 0)} us per tracked socket in a reconciliation pass,"
          f" {fmt(median('baseline_ms'), '.2f', 0)} us in the baseline")
else:
    print("per tracked socket: n/a (no reconciliation.added in the stats, or nothing added)")
if missing_fields:
    print(f"note: the final stats line lacks reconciliation {', '.join(sorted(missing_fields))};"
          " those figures are n/a")
PYTHON
