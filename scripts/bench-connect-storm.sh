#!/usr/bin/env bash
# bench-connect-storm.sh: what does `portwatch monitor` cost a connect()-heavy workload, and does
# it see every port?
#
# Runs ROUNDS interleaved pairs of a loopback connect storm (tests/bench/connect_storm.cpp):
#   baseline:  connect_storm --seconds SECONDS, alone
#   monitored: the same while `portwatch monitor --json --stats-interval 0` runs
# The order alternates per round (AB, BA, AB, ...) to cancel drift. Per round it reports the
# ratio monitored_rate / baseline_rate, and checks that every local port the monitored storm got
# appears in the monitor's output as an "allocate" line (how connect_autobind, the storm's pid,
# that local_port; counted per occurrence), and that the final stats line shows lost_total 0.
#
# Exit 0 if the median ratio >= 0.95, nothing is missing and nothing was lost; 1 otherwise.
#
# Environment: ROUNDS (default 5), SECONDS (default 5, storm length per run), BUILD_DIR (default
# build, relative to the repo root), KEEP=1 (keep the temporary data directory), MIN_RATIO
# (default 0.95), PIN_CPU (default 0: run the storm on that CPU; none: let the scheduler place it).
#
# Must run as root (the monitor loads BPF programs).
set -euo pipefail

BENCH_NAME=bench-connect-storm
# shellcheck source=lib/bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-common.sh"

bench_seconds=$(bench_env_seconds 5)
rounds=${ROUNDS:-5}
build_dir=${BUILD_DIR:-build}
min_ratio=${MIN_RATIO:-0.95}
pin_cpu=${PIN_CPU:-0}

require_positive_integer ROUNDS "$rounds"
require_positive_seconds SECONDS "$bench_seconds"
require_pin_cpu "$pin_cpu"
require_root "portwatch loads BPF programs"
require_tools python3

bench_enter_repo
bench_build "$build_dir" portwatch connect_storm
portwatch=$build_dir/portwatch
storm=$build_dir/tests/connect_storm
[[ -x $portwatch ]] || die "$portwatch was not built"
[[ -x $storm ]] || die "$storm was not built (is PORTWATCH_TESTS off in $build_dir?)"

# ---- temporary data and cleanup ------------------------------------------------------------
bench_make_tmp
monitor_pid=""

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    [[ -z $monitor_pid ]] || stop_process "$monitor_pid" INT 50 || true
    bench_remove_tmp
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

clk_tck=$(getconf CLK_TCK)

# The monitor itself is not pinned; its CPU use is reported separately.
storm_command "$pin_cpu" "$storm"
placement+=", monitor not pinned"

# "utime stime" of a process, in clock ticks
cpu_ticks() {
    awk '{ sub(/^.*\) /, ""); print $12, $13 }' "/proc/$1/stat"
}

# "user nice" of the whole machine (all CPUs), in clock ticks
machine_user_ticks() {
    awk '$1 == "cpu" { print $2, $3; exit }' /proc/stat
}

# run_storm OUT_JSON [extra args...]: one storm run, in a fresh network namespace so that every
# run starts from the same empty TCP state (no TIME_WAIT left by earlier runs, and the host's
# tables are left alone). Its JSON line goes to OUT_JSON; the machine's user time before and
# after to OUT_JSON.cpu (to tell how much other load shared the CPUs).
run_storm() {
    local out=$1
    shift
    local status=0 before after
    before=$(machine_user_ticks)
    "${storm_cmd[@]}" --seconds "$bench_seconds" --new-netns "$@" >"$out" || status=$?
    after=$(machine_user_ticks)
    echo "$before $after $clk_tck" >"$out.cpu"
    [[ $status -eq 0 ]] || die "connect_storm failed (exit $status): $(cat "$out" 2>/dev/null)"
}

run_baseline() {
    local n=$1
    run_storm "$tmp/baseline-$n.json"
}

run_monitored() {
    local n=$1
    local log=$tmp/monitor-$n.jsonl err=$tmp/monitor-$n.err
    "$portwatch" monitor --json --stats-interval 0 >"$log" 2>"$err" &
    monitor_pid=$!

    # The ready line is written (and flushed) once the BPF programs are attached.
    wait_for_first_line "$monitor_pid" "$log" "$err" '"type":"ready"' "portwatch monitor"

    local ticks_before ticks_after
    ticks_before=$(cpu_ticks "$monitor_pid")
    run_storm "$tmp/monitored-$n.json" --ports-file "$tmp/ports-$n.txt"
    ticks_after=$(cpu_ticks "$monitor_pid")
    echo "$ticks_before $ticks_after $clk_tck" >"$tmp/monitor-cpu-$n.txt"

    local status=0
    stop_process "$monitor_pid" INT 150 || status=$?
    monitor_pid=""
    [[ $status -ne 137 ]] || die "portwatch monitor did not exit within 15 s of SIGINT"
    [[ $status -eq 0 ]] || die "portwatch monitor exited with status $status: $(cat "$err")"
}

# ---- header ----------------------------------------------------------------------------------
echo "== portwatch connect-storm benchmark"
echo "measuring: loopback TCP connect() rate (socket, connect, getsockname, close; one client"
echo "  thread, one accept thread) without vs with 'portwatch monitor --json' running, and"
echo "  whether the monitor reports every port the storm was given"
echo "machine:   $(nproc) CPUs, kernel $(uname -r)"
echo "ports:     ip_local_port_range $(tr '\t' '-' </proc/sys/net/ipv4/ip_local_port_range)," \
    "tcp_tw_reuse $(cat /proc/sys/net/ipv4/tcp_tw_reuse)"
echo "runs:      $rounds rounds x (baseline + monitored), ${bench_seconds}s each, order ABBA;" \
    "each storm in a fresh network namespace"
echo "placement: $placement"
echo "load:      $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) at start; other work on this" \
    "machine shows as 'others' below and makes the figures noisy"

# One short discarded run so the first measured run does not pay for cold caches.
"${storm_cmd[@]}" --seconds 1 --new-netns >/dev/null || die "connect_storm warm-up run failed"

for ((n = 1; n <= rounds; n++)); do
    if ((n % 2 == 1)); then
        order=AB
        run_baseline "$n"
        run_monitored "$n"
    else
        order=BA
        run_monitored "$n"
        run_baseline "$n"
    fi
    echo "$order" >"$tmp/order-$n.txt"
    echo "   round $n/$rounds done ($order)"
done

# ---- analysis --------------------------------------------------------------------------------
python3 - "$tmp" "$rounds" "$min_ratio" <<'PYTHON'
import collections
import json
import statistics
import sys

tmp, rounds, min_ratio = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])


def storm_result(path):
    with open(path) as f:
        return json.loads(f.read())


def check_monitor(n, storm_pid):
    """Counts of (expected ports, missing ports, extra events) and the final stats line."""
    with open(f"{tmp}/ports-{n}.txt") as f:
        wanted = collections.Counter(int(line) for line in f if line.strip())
    seen = collections.Counter()
    final = None
    bad_lines = 0
    with open(f"{tmp}/monitor-{n}.jsonl") as f:
        for line in f:
            # Cheap prefilter: only allocate and stats lines matter here.
            if '"allocate"' not in line and '"stats"' not in line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                bad_lines += 1
                continue
            kind = event.get("type")
            if kind == "allocate":
                if (event.get("how") == "connect_autobind" and event.get("pid") == storm_pid):
                    seen[event.get("local_port")] += 1
            elif kind == "stats" and event.get("final") is True:
                final = event
    total = sum(wanted.values())
    missing = sum(max(0, count - seen[port]) for port, count in wanted.items())
    extra = sum(max(0, count - wanted[port]) for port, count in seen.items())
    return total, missing, extra, final, bad_lines


def monitor_cpu(n, seconds):
    """The monitor's (user, sys) CPU time during the storm, each as a share of one CPU."""
    with open(f"{tmp}/monitor-cpu-{n}.txt") as f:
        ub, sb, ua, sa, tck = (int(x) for x in f.read().split())
    return ((ua - ub) / tck / seconds, (sa - sb) / tck / seconds) if seconds > 0 else (0.0, 0.0)


def others_cpu(path, run, monitor_user_s=0.0):
    """User CPU time of everything but the storm and the monitor during a run, in CPUs."""
    with open(path + ".cpu") as f:
        ub, nb, ua, na, tck = (int(x) for x in f.read().split())
    user_s = (ua + na - ub - nb) / tck
    return max(0.0, user_s - run["cpu_user_s"] - monitor_user_s) / run["seconds"]


def sys_us_per_conn(run):
    return 1e6 * run["cpu_sys_s"] / run["connections"] if run["connections"] else 0.0


ratios = []
problems = []
total_ports = total_missing = total_lost = 0
monitor_shares = []
print()
print("                rate (connections/s)     storm sys us/conn  monitor CPU    others CPU"
      "                 ")
print("round order  baseline  monitored  ratio  baseline monitored  user+sys      base  mon"
      "   ports  missing  lost")
notes = []
for n in range(1, rounds + 1):
    with open(f"{tmp}/order-{n}.txt") as f:
        order = f.read().strip()
    base = storm_result(f"{tmp}/baseline-{n}.json")
    mon = storm_result(f"{tmp}/monitored-{n}.json")
    ratio = mon["rate"] / base["rate"] if base["rate"] > 0 else 0.0
    ratios.append(ratio)
    ports, missing, extra, final, bad_lines = check_monitor(n, mon["pid"])
    if final is None:
        problems.append(f"round {n}: no final stats line in the monitor output")
        lost = "?"
    else:
        lost = int(final.get("lost_total", 0))
        total_lost += lost
    if bad_lines:
        problems.append(f"round {n}: {bad_lines} unparsable JSON line(s) in the monitor output")
    total_ports += ports
    total_missing += missing
    for label, run in (("baseline", base), ("monitored", mon)):
        if run.get("failures", 0):
            notes.append(f"round {n} {label}: {run['failures']} failed connect attempts (retried)")
    if extra:
        notes.append(f"round {n}: {extra} connect_autobind allocation(s) for the storm's pid beyond"
                     " the ports it reported (failed or interrupted connects)")
    mon_user, mon_sys = monitor_cpu(n, mon["seconds"])
    monitor_shares.append(mon_user + mon_sys)
    other_base = others_cpu(f"{tmp}/baseline-{n}.json", base)
    other_mon = others_cpu(f"{tmp}/monitored-{n}.json", mon, mon_user * mon["seconds"])
    print(f"{n:5} {order:5}  {base['rate']:8.0f}  {mon['rate']:9.0f}  {ratio:5.3f}"
          f"  {sys_us_per_conn(base):8.1f} {sys_us_per_conn(mon):9.1f}"
          f"  {100 * mon_user:4.1f}+{100 * mon_sys:4.1f}%"
          f"  {other_base:8.2f} {other_mon:4.2f}"
          f"  {ports:6}  {missing:7}  {lost:>4}")
for note in notes:
    print(f"note: {note}")
print("(storm sys us/conn: the storm's kernel CPU time per connection, both of its threads;"
      " the BPF programs run there.\n monitor CPU: share of one CPU. others: user CPU of every"
      " other process on the machine, in CPUs.)")

median = statistics.median(ratios)
print()
print(f"median ratio (monitored/baseline): {median:.3f}  (min {min(ratios):.3f},"
      f" max {max(ratios):.3f}; pass at >= {min_ratio})")
print(f"missing allocations: {total_missing} of {total_ports}")
print(f"lost events: {total_lost}")
print(f"monitor CPU during the storms: median {100 * statistics.median(monitor_shares):.1f}%"
      " of one CPU")

if median < min_ratio:
    problems.append(f"median ratio {median:.3f} is below {min_ratio}")
if total_missing:
    problems.append(f"{total_missing} of {total_ports} allocations missing from the output")
if total_lost:
    problems.append(f"{total_lost} events lost (final stats lost_total)")
if problems:
    print("verdict: FAIL")
    for problem in problems:
        print(f"  - {problem}")
    sys.exit(1)
print("verdict: PASS")
PYTHON
