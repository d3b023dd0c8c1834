# shellcheck shell=bash
# Shared by the scripts/bench-*.sh measurements; sourced, not run. The caller sets BENCH_NAME
# (the prefix of its error lines) before sourcing and uses `set -euo pipefail`.

die() {
    echo "$BENCH_NAME: $*" >&2
    exit 1
}

# bench_env_seconds DEFAULT: the SECONDS the caller was started with. SECONDS is bash's own
# elapsed-time counter (always set, always ticking), so the value comes from the environment
# the process was started with, not from the shell variable.
bench_env_seconds() {
    local value
    value=$(tr '\0' '\n' </proc/$$/environ | sed -n 's/^SECONDS=//p' | head -n1)
    echo "${value:-$1}"
}

require_positive_integer() { # NAME VALUE
    [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer (got '$2')"
}

require_positive_seconds() { # NAME VALUE
    if [[ ! $2 =~ ^[0-9]+([.][0-9]+)?$ ]] || [[ $2 =~ ^0+([.]0*)?$ ]]; then
        die "$1 must be a positive number (got '$2')"
    fi
}

require_pin_cpu() { # VALUE
    [[ $1 == none || $1 =~ ^[0-9]+$ ]] || die "PIN_CPU must be a CPU number or none"
}

require_root() { # WHY
    [[ $(id -u) -eq 0 ]] || die "must run as root ($1)"
}

require_tools() { # TOOL...
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "$tool is required"
    done
}

# bench_enter_repo: cd to the repository root (sets repo_root).
bench_enter_repo() {
    repo_root=$(cd "$(dirname "${BASH_SOURCE[1]}")/.." && pwd)
    cd "$repo_root" || exit 1
}

# bench_build BUILD_DIR TARGET...: incremental; an existing build directory is reused as
# configured, and configured again once if it does not know a target yet.
bench_build() {
    local build_dir=$1
    shift
    local targets="$*"
    if [[ ! -f $build_dir/CMakeCache.txt ]]; then
        echo "== configuring $build_dir"
        cmake -S . -B "$build_dir" >/dev/null
    fi
    echo "== building ${targets// /, } in $build_dir"
    if ! make -C "$build_dir" -j2 "$@" >/dev/null; then
        cmake -S . -B "$build_dir" >/dev/null
        make -C "$build_dir" -j2 "$@" >/dev/null || die "build failed (run: make -C $build_dir $*)"
    fi
}

# bench_make_tmp: a temporary data directory in $tmp; bench_remove_tmp removes it (KEEP=1 keeps
# it and says where).
bench_make_tmp() {
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/$BENCH_NAME.XXXXXX")
}

bench_remove_tmp() {
    if [[ ${KEEP:-0} == 1 ]]; then
        echo "data kept in $tmp"
    else
        rm -rf "$tmp"
    fi
}

# stop_process PID SIGNAL TENTHS: send SIGNAL, wait up to TENTHS/10 s, then SIGKILL; reaps it.
# Returns its exit status, 137 if it had to be killed.
stop_process() {
    local pid=$1 signal=$2 tenths=$3 status=0 i
    kill "-$signal" "$pid" 2>/dev/null || true
    for ((i = 0; i < tenths; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        return 137
    fi
    wait "$pid" 2>/dev/null || status=$?
    return "$status"
}

# wait_for_first_line PID OUT ERR REGEX WHAT: until OUT's first line matches REGEX (grep -E),
# 30 s at most; dies with WHAT's stderr if the process exits first.
wait_for_first_line() {
    local pid=$1 out=$2 err=$3 regex=$4 what=$5 waited=0 status=0
    until [[ -s $out ]] && head -n1 "$out" | grep -Eq "$regex"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" || status=$?
            die "$what exited (status $status) before its ready line: $(cat "$err")"
        fi
        ((waited++ < 300)) || die "$what printed no ready line within 30 s: $(cat "$err")"
        sleep 0.1
    done
}

# shellcheck disable=SC2034 # storm_cmd and placement are the caller's
# storm_command PIN_CPU STORM: sets storm_cmd (the storm, pinned to that CPU or, with "none",
# not) and placement (a phrase for the header). The storm's two threads share one pinned CPU:
# unpinned, on a small VM the rate depends mostly on where the scheduler puts them.
storm_command() {
    local pin_cpu=$1 storm=$2
    if [[ $pin_cpu == none ]]; then
        storm_cmd=("$storm")
        placement="storm not pinned"
        return
    fi
    command -v taskset >/dev/null || die "taskset (util-linux) is required for PIN_CPU=$pin_cpu"
    taskset -c "$pin_cpu" true 2>/dev/null || die "cannot pin to CPU $pin_cpu (PIN_CPU)"
    storm_cmd=(taskset -c "$pin_cpu" "$storm")
    placement="storm pinned to CPU $pin_cpu (PIN_CPU=none: not pinned)"
}
