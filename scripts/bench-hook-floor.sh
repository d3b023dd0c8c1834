#!/usr/bin/env bash
# bench-hook-floor.sh: what does merely having BPF programs attached to portwatch's hooks cost a
# connect()-heavy workload, before those programs do any work?
#
# The programs (tests/bench/hook_floor.bpf.c, attached by tests/bench/hook_floor.cpp) do almost
# nothing: an early return, one helper call or one per-CPU counter increment. So the rate of the
# loopback connect storm (tests/bench/connect_storm.cpp) with them attached, relative to the rate
# with nothing attached, is the floor cost of the hooks themselves: the price any program on
# those hooks pays, however cheap its body is made.
#
# Conditions (each run ROUNDS times, interleaved; the order rotates by one every round to cancel
# drift):
#   base                  nothing attached
#   sys_exit              tp_btf/sys_exit
#   sys_exit+set_state    ... + tp_btf/inet_sock_set_state
#   all5                  ... + tp_btf/tcp_destroy_sock, cgroup/sock_create, cgroup/sock_release
#   sockops_noop          sockops returning at once
#   sockops_state         sockops that also turns on STATE_CB for connecting sockets
#
# Prints per-round rates, the median rate and the median ratio to base per condition. Exit 0
# whatever the figures are (a measurement, not a check); 1 if something could not run.
#
# Environment: ROUNDS (default 5), SECONDS (default 4, storm length per run), BUILD_DIR (default
# build, relative to the repo root), KEEP=1 (keep the temporary data directory), PIN_CPU (default
# 0: run the storm on that CPU; none: let the scheduler place it).
#
# Must run as root (BPF programs are loaded and attached to the cgroup2 root).
set -euo pipefail

BENCH_NAME=bench-hook-floor
# shellcheck source=lib/bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-common.sh"

bench_seconds=$(bench_env_seconds 4)
rounds=${ROUNDS:-5}
build_dir=${BUILD_DIR:-build}
pin_cpu=${PIN_CPU:-0}

require_positive_integer ROUNDS "$rounds"
require_positive_seconds SECONDS "$bench_seconds"
require_pin_cpu "$pin_cpu"
require_root "hook_floor loads BPF programs"
require_tools python3

bench_enter_repo
bench_build "$build_dir" connect_storm hook_floor
storm=$build_dir/tests/connect_storm
loader=$build_dir/tests/hook_floor
[[ -x $storm ]] || die "$storm was not built (is PORTWATCH_TESTS off in $build_dir?)"
[[ -x $loader ]] || die "$loader was not built (is PORTWATCH_TESTS off in $build_dir?)"

# ---- conditions ------------------------------------------------------------------------------
conditions=(base sys_exit sys_exit+set_state sys_exit+set_state+destroy+sock_create+sock_release
    sockops_noop sockops_state)
all5="floor_sys_exit floor_set_state floor_destroy floor_sock_create floor_sock_release"
declare -A programs=(
    [base]=""
    [sys_exit]="floor_sys_exit"
    [sys_exit+set_state]="floor_sys_exit floor_set_state"
    [sys_exit+set_state+destroy+sock_create+sock_release]="$all5"
    [sockops_noop]="floor_sockops_noop"
    [sockops_state]="floor_sockops_state"
)

# ---- temporary data and cleanup ------------------------------------------------------------
bench_make_tmp
loader_pid=""

# stop_loader: SIGINT, wait up to 15 s, then SIGKILL. Returns the loader's exit status.
stop_loader() {
    local status=0
    [[ -n $loader_pid ]] || return 0
    stop_process "$loader_pid" INT 150 || status=$?
    loader_pid=""
    return "$status"
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_loader || true
    bench_remove_tmp
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The loader is not pinned; it only sleeps while the storm runs.
storm_command "$pin_cpu" "$storm"

# start_loader CONDITION N INDEX: attach the condition's programs (if any), wait for the ready
# line.
start_loader() {
    local cond=$1 n=$2 index=$3
    local -a progs
    read -r -a progs <<<"${programs[$cond]}"
    ((${#progs[@]} > 0)) || return 0
    local out=$tmp/loader-$n-$index.out err=$tmp/loader-$n-$index.err
    "$loader" "${progs[@]}" >"$out" 2>"$err" &
    loader_pid=$!
    wait_for_first_line "$loader_pid" "$out" "$err" '^ready$' "hook_floor ${progs[*]}"
}

# run_condition CONDITION N: one storm run, in a fresh network namespace, with the condition's
# programs attached. Its JSON line goes to $tmp/run-N-INDEX.json.
run_condition() {
    local cond=$1 n=$2 index=$3
    local out=$tmp/run-$n-$index.json
    start_loader "$cond" "$n" "$index"
    local status=0
    "${storm_cmd[@]}" --seconds "$bench_seconds" --new-netns >"$out" || status=$?
    [[ $status -eq 0 ]] || die "connect_storm failed under $cond (exit $status): $(cat "$out")"
    local loader_status=0
    stop_loader || loader_status=$?
    [[ $loader_status -eq 0 ]] || die "hook_floor under $cond exited with status $loader_status"
}

# ---- header ----------------------------------------------------------------------------------
echo "== portwatch hook floor benchmark"
echo "measuring: loopback TCP connect() rate (connect_storm: socket, connect, getsockname, close;"
echo "  one client thread, one accept thread) with trivial BPF programs attached to the hooks"
echo "  portwatch uses. The programs do (almost) nothing (an early return, one helper call or one"
echo "  per-CPU counter increment), so the ratio to base is the cost of the hooks themselves: the"
echo "  floor under any program on them, however cheap its body."
echo "machine:   $(nproc) CPUs, kernel $(uname -r)," \
    "kernel.bpf_stats_enabled $(cat /proc/sys/kernel/bpf_stats_enabled 2>/dev/null || echo '?')"
echo "ports:     ip_local_port_range $(tr '\t' '-' </proc/sys/net/ipv4/ip_local_port_range)," \
    "tcp_tw_reuse $(cat /proc/sys/net/ipv4/tcp_tw_reuse)"
echo "runs:      $rounds rounds x ${#conditions[@]} conditions, ${bench_seconds}s each, order" \
    "rotated by one per round; each storm in a fresh network namespace"
echo "placement: $placement"
echo "load:      $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) at start; other work on this" \
    "machine makes the figures noisy"
echo "conditions (by number, as in the round order below):"
for index in "${!conditions[@]}"; do
    cond=${conditions[$index]}
    printf '  %d %-52s %s\n' "$index" "$cond" "${programs[$cond]:-(nothing attached)}"
done

# One short discarded run so the first measured run does not pay for cold caches.
"${storm_cmd[@]}" --seconds 1 --new-netns >/dev/null || die "connect_storm warm-up run failed"

count=${#conditions[@]}
for ((n = 1; n <= rounds; n++)); do
    order=()
    for ((k = 0; k < count; k++)); do
        index=$(((n - 1 + k) % count))
        run_condition "${conditions[$index]}" "$n" "$index"
        order+=("$index")
    done
    echo "   round $n/$rounds done (order ${order[*]})"
done

# ---- analysis --------------------------------------------------------------------------------
python3 - "$tmp" "$rounds" "${conditions[@]}" <<'PYTHON'
import json
import statistics
import sys

tmp, rounds, conditions = sys.argv[1], int(sys.argv[2]), sys.argv[3:]


def run(n, index):
    with open(f"{tmp}/run-{n}-{index}.json") as f:
        return json.loads(f.read())


def ratio(a, b):
    return a / b if b > 0 else 0.0


def sys_us_per_conn(r):
    return 1e6 * r["cpu_sys_s"] / r["connections"] if r["connections"] else 0.0


results = {cond: [run(n, i) for n in range(1, rounds + 1)] for i, cond in enumerate(conditions)}
medians = {cond: statistics.median(r["rate"] for r in runs) for cond, runs in results.items()}
base_runs = results[conditions[0]]
base = medians[conditions[0]]

width = max(len(cond) for cond in conditions)
print()
print("rN: connections/s in round N; median: of those; ratio: median / median of base;"
      " cost: 1 - ratio;")
print("paired: median over rounds of (rate / base rate of the same round);"
      " sys us/conn: the storm's")
print("kernel CPU time per connection, median (the BPF programs run in that time)")
print()
print(f"{'condition':{width}}  " + " ".join(f"{'r' + str(n):>7}" for n in range(1, rounds + 1))
      + "   median   ratio    cost  paired  sys us/conn")
for cond in conditions:
    runs = results[cond]
    r = ratio(medians[cond], base)
    paired = statistics.median(ratio(a["rate"], b["rate"]) for a, b in zip(runs, base_runs))
    sys_us = statistics.median(sys_us_per_conn(run) for run in runs)
    print(f"{cond:{width}}  " + " ".join(f"{run['rate']:7.0f}" for run in runs)
          + f"  {medians[cond]:7.0f}  {r:6.3f}  {100 * (1 - r):5.1f}%  {paired:6.3f}"
          + f"  {sys_us:11.2f}")
failures = sum(r.get("failures", 0) for runs in results.values() for r in runs)
if failures:
    print(f"note: {failures} failed connect attempts in all (retried by the storm)")
PYTHON
