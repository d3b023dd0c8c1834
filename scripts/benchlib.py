# SPDX-License-Identifier: Apache-2.0
"""Shared helpers of the scripts/bench-*.py measurements (imported, not run).

Building, the loopback connect storm (tests/bench/connect_storm), /proc readers, waiting for a
process's ready line, stopping a process, BPF program statistics (bpf_stats) and clean-up on
SIGINT/SIGTERM/exceptions. A failure that stops a measurement raises BenchError; main() of a
script catches it with `run_main`, which prints it and exits 2 (an exit status of 1 is left
for "measured, and a target was not met").
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
BPF_STATS_SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")

EXIT_TARGET_MISSED = 1
EXIT_COULD_NOT_RUN = 2


class BenchError(Exception):
    """Something could not run; the measurement is incomplete."""


# ---- process-wide clean-up ------------------------------------------------------------------

_cleanups: list[Callable[[], None]] = []


def at_cleanup(action: Callable[[], None]) -> Callable[[], None]:
    """Runs ACTION at exit (normal, exception, SIGINT, SIGTERM), last registered first."""
    _cleanups.append(action)
    return action


def cancel_cleanup(action: Callable[[], None]) -> None:
    if action in _cleanups:
        _cleanups.remove(action)


def _run_cleanups() -> None:
    while _cleanups:
        action = _cleanups.pop()
        try:
            action()
        except Exception as error:  # clean-up goes on whatever one step does
            print(f"clean-up: {error}", file=sys.stderr)


def _raise_interrupt(signum, _frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run_main(name: str, main: Callable[[], int]) -> None:
    """Runs MAIN, then the clean-ups; exits with its status, 2 on BenchError, 130 on SIGINT."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)  # also when started with SIGINT ignored
    status = 0
    try:
        status = main()
    except BenchError as error:
        print(f"{name}: {error}", file=sys.stderr)
        status = EXIT_COULD_NOT_RUN
    except KeyboardInterrupt:
        print(f"{name}: interrupted, cleaning up", file=sys.stderr)
        status = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second ^C must not break the clean-up
        _run_cleanups()
    sys.exit(status)


# ---- arguments and environment --------------------------------------------------------------

def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(text)
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(text)
    return value


def pin_cpu_arg(text: str) -> str:
    if text != "none" and not text.isdigit():
        raise ValueError(text)
    return text


def require_root(why: str) -> None:
    if os.geteuid() != 0:
        raise BenchError(f"must run as root ({why}); try: sudo python3 {sys.argv[0]}")


def require_tools(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is required")


def build(build_dir: Path, *targets: str, skip: bool = False, source: Path = REPO) -> None:
    """Incremental build of TARGETS in BUILD_DIR (configured from SOURCE first if it is not
    yet); with SKIP, only checks that the directory exists."""
    if skip:
        if not (build_dir / "CMakeCache.txt").exists():
            raise BenchError(f"{build_dir} is not a build directory (run with --build)")
        return
    if not (build_dir / "CMakeCache.txt").exists():
        print(f"== configuring {build_dir}", flush=True)
        _quiet(["cmake", "-S", str(source), "-B", str(build_dir),
                "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], "cmake configure")
    print(f"== building {', '.join(targets)} in {build_dir}", flush=True)
    command = ["cmake", "--build", str(build_dir), "-j2", "--target", *targets]
    if subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode:
        _quiet(["cmake", "-S", str(source), "-B", str(build_dir)], "cmake configure")
        _quiet(command, "build (run: " + " ".join(command) + ")")


def _quiet(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise BenchError(f"{what} failed: {result.stderr.strip()[-2000:]}")


def executable(path: Path, hint: str = "") -> Path:
    if not os.access(path, os.X_OK):
        raise BenchError(f"{path} was not built{hint}")
    return path


def work_dir(prefix: str, keep: bool) -> Path:
    """A temporary data directory, removed at exit unless KEEP (then its path is printed)."""
    path = Path(tempfile.mkdtemp(prefix=prefix + "."))

    def remove():
        if keep:
            print(f"data kept in {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)

    at_cleanup(remove)
    return path


# ---- the machine ----------------------------------------------------------------------------

def machine_lines(extra_sysctls: Iterable[str] = ()) -> list[str]:
    """Header lines saying what the figures were measured on."""
    mem_gib = int(Path("/proc/meminfo").read_text().split()[1]) / 1048576
    ports = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    tw_reuse = Path("/proc/sys/net/ipv4/tcp_tw_reuse").read_text().strip()
    extras = "".join(f", {name} {read_sysctl(name)}" for name in extra_sysctls)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return [f"machine:   {os.cpu_count()} CPUs, {mem_gib:.1f} GiB, kernel {os.uname().release}"
            f"{extras}",
            f"ports:     ip_local_port_range {ports[0]}-{ports[1]}, tcp_tw_reuse {tw_reuse}",
            f"load:      {load} (1/5/15 min) at start; other work on this machine makes the"
            " figures noisy"]


def read_sysctl(name: str) -> str:
    path = Path("/proc/sys") / name.replace(".", "/")
    try:
        return path.read_text().strip()
    except OSError:
        return "?"


def machine_user_ticks() -> int:
    """User + nice time of the whole machine (all CPUs), in clock ticks."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return int(fields[1]) + int(fields[2])


def irq_work_interrupts() -> int:
    """IRQ work interrupts so far, all CPUs (/proc/interrupts IWI; x86): among them the BPF
    ring buffer's reader wake-ups."""
    for line in Path("/proc/interrupts").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "IWI:":
            return sum(int(field) for field in fields[1:] if field.isdigit())
    return 0


# ---- /proc/PID ------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU time of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def status_kb(pid: int, *keys: str) -> dict[str, int]:
    """Fields of /proc/PID/status given in kB (VmRSS, VmHWM, ...), as ints."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in keys:
            values[key] = int(value.split()[0])
    missing = set(keys) - set(values)
    if missing:
        raise BenchError(f"/proc/{pid}/status has no {', '.join(sorted(missing))}")
    return values


def wchan(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return ""


def wait_for_event_loop(pid: int, timeout: float = 120) -> None:
    """Waits until a process that has printed its ready line is in its event loop: its main
    thread waits in epoll_wait (wchan), or, if wchan cannot tell, it used no CPU for 1 s.
    (portwatch monitor prints ready before its start-up pass over the socket tables.)"""
    deadline = time.monotonic() + timeout
    last, idle_since = None, time.monotonic()
    while time.monotonic() < deadline:
        where = wchan(pid)
        if "epoll" in where:
            return
        try:
            now = sum(cpu_seconds(pid))
        except OSError:
            raise BenchError(f"process {pid} exited during its start-up") from None
        if now != last:
            last, idle_since = now, time.monotonic()
        elif time.monotonic() - idle_since >= 1.0:
            return
        time.sleep(0.05)
    raise BenchError(f"process {pid} did not reach its event loop within {timeout:.0f} s")


# ---- child processes ------------------------------------------------------------------------

def start(command: list[str], stdout: Path, stderr: Path,
          new_session: bool = False) -> subprocess.Popen:
    """Starts COMMAND with its output in files (NEW_SESSION: in a session of its own, as systemd
    starts a service); it is stopped (SIGINT, then SIGKILL) at clean-up if still running then."""
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, start_new_session=new_session)
    process.cleanup = at_cleanup(lambda: stop(process, signal.SIGINT, 5))
    return process


def stop(process: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 15) -> int | None:
    """Sends SIG, waits up to TIMEOUT s, then SIGKILL. Returns the exit status, None if it had
    to be killed."""
    cancel_cleanup(getattr(process, "cleanup", None))
    if process.poll() is not None:
        return process.returncode
    process.send_signal(sig)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def stop_checked(process: subprocess.Popen, what: str, stderr: Path | None = None,
                 timeout: float = 15) -> None:
    status = stop(process, signal.SIGINT, timeout)
    if status is None:
        raise BenchError(f"{what} did not exit within {timeout:.0f} s of SIGINT")
    if status != 0:
        raise BenchError(f"{what} exited with status {status}: {tail(stderr)}")


def tail(path: Path | None, chars: int = 1500) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(errors="replace").strip()[-chars:]
    except OSError:
        return ""


def wait_for_line(process: subprocess.Popen, path: Path, match: Callable[[str], bool],
                  what: str, stderr: Path | None = None, timeout: float = 30) -> str:
    """Waits until a line of PATH (the process's output) matches; returns that line."""
    deadline = time.monotonic() + timeout
    offset = 0
    pending = ""
    while True:
        with open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read()
        offset += len(chunk)
        pending += chunk.decode(errors="replace")
        *lines, pending = pending.split("\n")
        for line in lines:
            if match(line):
                return line
        if process.poll() is not None:
            raise BenchError(f"{what} exited (status {process.returncode}) before its ready"
                             f" line: {tail(stderr)}")
        if time.monotonic() > deadline:
            raise BenchError(f"{what} printed no ready line within {timeout:.0f} s: "
                             f"{tail(stderr)}")
        time.sleep(0.02)


def wait_until_idle(path: Path, quiet: float = 0.3, timeout: float = 10) -> None:
    """Waits until PATH has not grown for QUIET seconds (a writer has caught up), TIMEOUT at
    most."""
    deadline = time.monotonic() + timeout
    size, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now_size = path.stat().st_size
        if now_size != size:
            size, since = now_size, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.05)


# ---- the connect storm ----------------------------------------------------------------------

class Storm:
    """tests/bench/connect_storm, pinned to one CPU (or not), each run in a fresh netns."""

    def __init__(self, binary: Path, pin_cpu: str):
        self.binary = binary
        if pin_cpu == "none":
            self.prefix: list[str] = []
            self.placement = "storm not pinned"
        else:
            require_tools("taskset")
            if subprocess.run(["taskset", "-c", pin_cpu, "true"],
                              stderr=subprocess.DEVNULL).returncode:
                raise BenchError(f"cannot pin to CPU {pin_cpu} (--pin-cpu)")
            self.prefix = ["taskset", "-c", pin_cpu]
            # its two threads share the CPU: unpinned, on a small machine the rate depends
            # mostly on where the scheduler puts them
            self.placement = f"storm (both threads) pinned to CPU {pin_cpu}"

    def run(self, seconds: float, ports_file: Path | None = None) -> dict:
        """One run; its JSON result, plus others_user_s: user CPU time of the whole machine
        during the run minus the storm's own."""
        command = self.prefix + [str(self.binary), "--seconds", str(seconds), "--new-netns"]
        if ports_file is not None:
            command += ["--ports-file", str(ports_file)]
        before, irq_work_before = machine_user_ticks(), irq_work_interrupts()
        result = subprocess.run(command, capture_output=True, text=True)
        after, irq_work_after = machine_user_ticks(), irq_work_interrupts()
        if result.returncode:
            raise BenchError(f"connect_storm failed (exit {result.returncode}): "
                             f"{(result.stdout + result.stderr).strip()[-1500:]}")
        run = json.loads(result.stdout.strip().splitlines()[-1])
        run["machine_user_s"] = (after - before) / CLK_TCK
        run["irq_work_per_s"] = (irq_work_after - irq_work_before) / run["seconds"]
        return run


def sys_us_per_connection(run: dict) -> float:
    """The storm's kernel CPU time per connection (both threads; the BPF programs run there)."""
    return 1e6 * run["cpu_sys_s"] / run["connections"] if run["connections"] else 0.0


def others_cpus(run: dict, also_excluded_user_s: float = 0.0) -> float:
    """User CPU of every other process during a storm run, in CPUs."""
    other = run["machine_user_s"] - run["cpu_user_s"] - also_excluded_user_s
    return max(0.0, other) / run["seconds"]


# ---- BPF programs ---------------------------------------------------------------------------

def bpf_programs() -> dict[int, dict]:
    """Every loaded BPF program by id (bpftool -j prog show): name, type, run_time_ns, run_cnt
    (the last two are 0 unless kernel.bpf_stats_enabled was on while it ran)."""
    result = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True)
    if result.returncode:
        raise BenchError(f"bpftool prog show failed: {result.stderr.strip()}")
    programs = {}
    for prog in json.loads(result.stdout or "[]"):
        programs[prog["id"]] = {"name": prog.get("name", "?"), "type": prog.get("type", "?"),
                                "run_time_ns": prog.get("run_time_ns", 0),
                                "run_cnt": prog.get("run_cnt", 0),
                                "map_ids": prog.get("map_ids", [])}
    return programs


def require_no_portwatch_attached() -> None:
    """Fails when portwatch's or the floor's programs are loaded already (a monitor left
    running): the storm would pay for their hooks too, in every condition. Programs of a
    process that has just exited are freed a moment later (a deferred release): waits 3 s."""
    deadline = time.monotonic() + 3
    while True:
        stray = sorted({p["name"] for p in bpf_programs().values()
                        if p["name"].startswith(("pw_", "floor_"))})
        if not stray or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if stray:
        raise BenchError("portwatch programs are loaded already (" + ", ".join(stray) + "): stop"
                         " the monitor or loader that holds them (bpftool prog show) and run again")


def bpf_links() -> list[dict]:
    result = subprocess.run(["bpftool", "-j", "link", "show"], capture_output=True, text=True)
    if result.returncode:
        raise BenchError(f"bpftool link show failed: {result.stderr.strip()}")
    return json.loads(result.stdout or "[]")


def attachments(prog_ids: Iterable[int]) -> list[str]:
    """Where the links of programs PROG_IDS attach (bpftool -j link show), sorted: "tp sys_exit",
    "cgroup_sock_ops cgroup 1", "trace_fexit btf 1234"... Equal lists: the same hooks."""
    ids = set(prog_ids)
    found = []
    for link in bpf_links():
        if link.get("prog_id") not in ids:
            continue
        if "tp_name" in link:
            found.append(f"tp {link['tp_name']}")
        else:
            where = link.get("attach_type", link.get("type", "?"))
            if "cgroup_id" in link:
                where += f" cgroup {link['cgroup_id']}"
            if "target_btf_id" in link:
                where += f" btf {link['target_obj_id']}/{link['target_btf_id']}"
            found.append(where)
    return sorted(found)


def programs_of(pid: int) -> dict[int, dict]:
    """The BPF programs process PID holds (prog_id in the fdinfo of its program and link file
    descriptors), from bpf_programs(). Exact even while others load programs."""
    ids = set()
    for fdinfo in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            text = fdinfo.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("prog_id:"):
                ids.add(int(line.split()[1]))
    programs = bpf_programs()
    return {i: programs[i] for i in sorted(ids) if i in programs}


def bpf_stats_delta(ids: Iterable[int], before: dict[int, dict]) -> dict[int, dict]:
    """Calls and run time of programs IDS since the BEFORE reading (bpf_programs())."""
    now = bpf_programs()
    delta = {}
    for pid in ids:
        if pid in now and pid in before:
            delta[pid] = {"name": now[pid]["name"],
                          "run_cnt": now[pid]["run_cnt"] - before[pid]["run_cnt"],
                          "run_time_ns": now[pid]["run_time_ns"] - before[pid]["run_time_ns"]}
    return delta


class BpfStats:
    """kernel.bpf_stats_enabled set to 1 while in use; the old value restored after, and at
    clean-up should the script be interrupted."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.old: str | None = None

    def __enter__(self):
        if self.enabled:
            if not BPF_STATS_SYSCTL.exists():
                raise BenchError(f"{BPF_STATS_SYSCTL} is missing (kernel without bpf_stats)")
            self.old = BPF_STATS_SYSCTL.read_text().strip()
            self._restore = at_cleanup(self.restore)
            BPF_STATS_SYSCTL.write_text("1")
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            cancel_cleanup(self._restore)
            self.restore()

    def restore(self):
        if self.old is not None:
            BPF_STATS_SYSCTL.write_text(self.old)
            self.old = None


# ---- figures --------------------------------------------------------------------------------

def median(values: Iterable[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def fmt(value, spec: str, width: int = 0) -> str:
    """VALUE formatted, or n/a for None."""
    return f"{'n/a':>{width}}" if value is None else f"{value:{width}{spec}}"


def balanced_rounds(count: int) -> int:
    """Rounds of one whole balanced design for COUNT conditions (balanced_order())."""
    return count if count % 2 == 0 else 2 * count


def balanced_order(count: int, n: int) -> list[int]:
    """The order of conditions 0..COUNT-1 in round N, from a Williams design: over COUNT rounds
    (2 * COUNT when COUNT is odd) each condition runs in each place once and follows each other
    condition once, so that what a run leaves behind weighs on every condition alike.
    (Rotation alone made condition k follow condition k-1 nearly always: two runs of the same
    monitor binary then differed by 1-2 points, the one after the floor's run the slower.)"""
    first = [0]
    low, high = 1, count - 1
    while len(first) < count:
        first.append(low)
        low += 1
        if len(first) < count:
            first.append(high)
            high -= 1
    squares = 1 if count % 2 == 0 else 2
    row = n % (count * squares)
    order = [(c + row) % count for c in first]
    return order[::-1] if row >= count else order

