#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""What a big conntrack table costs `portwatch monitor`, and whether its NAT count stays right.

Issue 34's "100k conntrack entries". A throwaway network namespace (pw-bench-nat-PID, removed
at the end, also on failure or ^C) gets an nft masquerade rule, and its conntrack table N source
NAT entries made with the conntrack tool (`conntrack --load-file`: ctnetlink creates each entry
with --src-nat, so it has status SRC_NAT as a translated connection has; no packet is sent).
Addresses are in 198.18.0.0/15 only: clients 198.18.x.y, servers 198.19.1.D:80, each entry
translated to 198.19.0.1 and a port of 1024-65535, 25,000 entries per server (so 100,000
entries are 4 NAT scopes of 64,512 ports, 39 % full: no warning).

For each N (--counts, default 0, 10000 and 100000), one at a time:
  fill      the time `conntrack --load-file` takes to insert the N entries; the kernel's count
            (`conntrack -C`) and its SRC_NAT entries (`conntrack -L --src-nat`) must both be N
  dump      build/tests/nat_dump: dump_nat_mappings(), the read every report pass makes of
            each netns's table, --dumps times; the median, per dump and per mapping
  monitor   `portwatch monitor --json --netns INODE --report-top 0 --report-interval R
            --stats-interval 0`; after its ready line and --passes report passes, its VmRSS
            and VmHWM; then SIGINT. Memory per mapping is (RSS at N - RSS at 0) / N. The
            final stats line's nat.mappings and the final report's NAT scopes (sum of in_use)
            must equal N, nat.overflows is said (0 expected: nothing changes meanwhile).
Then events under load (--churn entries, default 100000): a monitor with --stats-interval 1s
and a report every --churn-report-interval s (default 20) starts on an empty table; the tool
inserts --churn entries (--load-file), then deletes those to every other server (conntrack -D
-d SERVER), as fast as it can, one process at a time.
2.5 s and 8 s after the tool is done (no report pass yet) the newest stats line's nat.mappings
is what the events (and any re-read after an overflow) made of it; after the next report pass
it is compared again. Both must equal `conntrack -C`; an overflow is allowed if the table was re-read
then (the count right), never silent.

Exit status 0 when every count matched, 1 when one did not (the figures say which), 2 when
something could not run. Root (the monitor loads BPF programs; a netns is made).

  sudo python3 scripts/bench-nat.py [--build] [--counts 0,10000,100000] [--report-interval 5]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

NAME = "bench-nat"
NAT_ADDRESS = "198.19.0.1"
PER_SERVER = 25000  # entries per destination: one NAT scope each
FIRST_NAT_PORT = 1024


def counts_arg(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",")]
    if not counts or any(count < 0 or count > 4_000_000 for count in counts):
        raise ValueError(text)
    return counts


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=counts_arg, default=[0, 10000, 100000],
                        help="NAT entries of each run, comma-separated (default 0,10000,100000;"
                        " 0 first: the memory baseline)")
    parser.add_argument("--report-interval", type=bl.positive_int, default=5,
                        help="the monitor's --report-interval, in s (default 5)")
    parser.add_argument("--passes", type=bl.positive_int, default=2,
                        help="report passes before memory is read (default 2)")
    parser.add_argument("--dumps", type=bl.positive_int, default=5,
                        help="nat_dump's dumps per N (default 5)")
    parser.add_argument("--churn", type=int, default=100000,
                        help="entries inserted (then those to every other server deleted) under"
                        " load; 0: no churn run")
    parser.add_argument("--churn-report-interval", type=bl.positive_int, default=20)
    parser.add_argument("--churn-pause", type=float, default=0.0,
                        help="seconds between the inserts and the deletes (default 0)")
    parser.add_argument("--build", action="store_true", help="build portwatch and nat_dump first")
    parser.add_argument("--build-dir", type=Path, default=bl.REPO / "build")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data")
    args = parser.parse_args()
    if args.churn < 0:
        parser.error("--churn must be >= 0")
    return args


# ---- the namespace and its table ------------------------------------------------------------

class Namespace:
    """The throwaway netns, its masquerade rule and conntrack table."""

    def __init__(self):
        self.name = f"pw-bench-nat-{os.getpid()}"
        run(["ip", "netns", "add", self.name])
        bl.at_cleanup(lambda: run(["ip", "netns", "del", self.name]))
        self.path = Path("/run/netns") / self.name
        self.inode = os.stat(self.path).st_ino
        self.run(["ip", "link", "set", "lo", "up"])
        ruleset = ("table ip pw_bench_nat {\n chain post {\n"
                   "  type nat hook postrouting priority srcnat; policy accept;\n"
                   "  oifname != \"lo\" masquerade\n }\n}\n")
        self.run(["nft", "-f", "-"], stdin=ruleset)

    def run(self, command: list[str], stdin: str | None = None,
            stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
        return run(["ip", "netns", "exec", self.name, *command], stdin, stdout)

    def count(self) -> int:
        """conntrack -C: every entry of the table."""
        return int(self.run(["conntrack", "-C"]).stdout.strip())

    def src_nat_count(self) -> int:
        """Entries with status SRC_NAT (conntrack -L --src-nat filters on it)."""
        listed = self.run(["conntrack", "-L", "--src-nat"]).stdout
        return sum(1 for line in listed.splitlines() if line.strip())

    def distinct_ids(self) -> int:
        """Distinct CTA_IDs among the entries: nf_ct_get_id() is a 32-bit hash, so two live
        entries of a big table can share one (at 100,000 entries ~1.2 such pairs expected)."""
        listed = self.run(["conntrack", "-L", "-o", "id"]).stdout
        return len({word for word in listed.split() if word.startswith("id=")})

    def load(self, lines_file: Path) -> float:
        """conntrack --load-file; seconds it took."""
        start = time.monotonic()
        self.run(["conntrack", "--load-file", str(lines_file)], stdout=subprocess.DEVNULL)
        return time.monotonic() - start

    def delete_to(self, servers: list[str]) -> float:
        """conntrack -D -d SERVER for each (one walk of the table each: a -D per entry walks it
        per entry, 12 ms each at 5,000); seconds it took."""
        start = time.monotonic()
        for server in servers:
            self.run(["conntrack", "-D", "-d", server], stdout=subprocess.DEVNULL)
        return time.monotonic() - start

    def flush(self) -> None:
        self.run(["conntrack", "-F"], stdout=subprocess.DEVNULL)
        if self.count():
            raise bl.BenchError(f"conntrack -F left {self.count()} entries in {self.name}")


def run(command: list[str], stdin: str | None = None,
        stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    result = subprocess.run(command, input=stdin, stdout=stdout, stderr=subprocess.PIPE,
                            text=True)
    if result.returncode:
        raise bl.BenchError(f"{' '.join(command[:8])}... failed (exit {result.returncode}):"
                            f" {result.stderr.strip()[-1000:]}")
    return result


def entry_tuple(i: int) -> str:
    """Entry I's original tuple (unique for I < 2^16 * 45,535), as conntrack options."""
    client = f"198.18.{(i >> 8) & 255}.{i & 255}"
    return f"-p tcp -s {client} -d {server_of(i)} --sport {20000 + (i >> 16)} --dport 80"


def write_inserts(path: Path, first: int, count: int) -> Path:
    with open(path, "w") as f:
        for i in range(first, first + count):
            port = FIRST_NAT_PORT + i % PER_SERVER
            f.write(f"-I {entry_tuple(i)} --state ESTABLISHED --timeout 600"
                    f" -u SEEN_REPLY,ASSURED --src-nat {NAT_ADDRESS}:{port}\n")
    return path


def server_of(i: int) -> str:
    return f"198.19.1.{i // PER_SERVER % 250 + 1}"


def fill(netns: Namespace, count: int, work: Path) -> dict:
    netns.flush()
    seconds = netns.load(write_inserts(work / f"insert-{count}.txt", 0, count)) if count else 0.0
    in_table, src_nat = netns.count(), netns.src_nat_count()
    if in_table != count or src_nat != count:
        raise bl.BenchError(f"after inserting {count} entries the table has {in_table},"
                            f" {src_nat} of them SRC_NAT")
    return {"fill_s": seconds, "in_table": in_table}


def raise_conntrack_max(needed: int) -> None:
    """nf_conntrack_max is the whole machine's on this kernel (read-only inside a netns):
    raised if too small, restored at the end."""
    name = "net.netfilter.nf_conntrack_max"
    path = Path("/proc/sys/net/netfilter/nf_conntrack_max")
    before = int(path.read_text())
    if before >= needed:
        return
    path.write_text(str(needed))
    bl.at_cleanup(lambda: path.write_text(str(before)))
    print(f"   {name} raised from {before} to {needed} (restored at the end)")


# ---- the monitor ----------------------------------------------------------------------------

class Monitor:
    """portwatch monitor --json on the bench netns only; its output lines as they come."""

    def __init__(self, portwatch: Path, netns: Namespace, work: Path, name: str,
                 report_interval: int, stats_interval: str):
        self.out, self.err = work / f"{name}.jsonl", work / f"{name}.err"
        self.out.touch()
        self.netns = netns
        command = [str(portwatch), "monitor", "--json", "--netns", str(netns.inode),
                   "--report-top", "0", "--events", "none",
                   "--report-interval", f"{report_interval}s",
                   "--stats-interval", stats_interval]
        self.command = command
        self.process = bl.start(command, self.out, self.err)
        bl.wait_for_line(self.process, self.out, lambda line: '"type":"ready"' in line,
                         "portwatch monitor", self.err, timeout=120)
        bl.wait_for_event_loop(self.process.pid)

    def lines(self) -> list[dict]:
        with open(self.out) as f:
            return [json.loads(line) for line in f if line.strip()]

    def of_type(self, kind: str) -> list[dict]:
        return [line for line in self.lines() if line.get("type") == kind]

    def wait_for(self, kind: str, count: int, timeout: float) -> dict:
        """Waits until COUNT lines of type KIND have been written; the last of them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.of_type(kind)
            if len(found) >= count:
                return found[count - 1]
            if self.process.poll() is not None:
                raise bl.BenchError(f"portwatch monitor exited (status"
                                    f" {self.process.returncode}): {bl.tail(self.err)}")
            if time.monotonic() > deadline:
                raise bl.BenchError(f"portwatch monitor wrote no {kind} line {count} within"
                                    f" {timeout:.0f} s")
            time.sleep(0.1)

    def memory(self) -> dict[str, int]:
        return bl.status_kb(self.process.pid, "VmRSS", "VmHWM")

    def stop(self) -> tuple[dict, dict]:
        """SIGINT; the final report and the final stats line."""
        bl.stop_checked(self.process, "portwatch monitor", self.err, timeout=60)
        reports = self.of_type("report")
        finals = [line for line in self.of_type("stats") if line.get("final") is True]
        if not reports or not finals:
            raise bl.BenchError(f"{self.out}: no final report or final stats line")
        return reports[-1], finals[-1]

    def nat_in_use(self, report: dict) -> int:
        """The NAT scopes' in_use in the bench netns (and any left out: there should be none
        with --report-top 0)."""
        total = 0
        for entry in report.get("netns", []):
            if entry.get("netns") != self.netns.inode:
                continue
            total += sum(scope["in_use"] for scope in entry["scopes"]
                         if scope["scope"] == "nat")
            total += entry.get("scopes_left_out", {}).get("in_use", 0)
        return total


def nat_dump(binary: Path, netns: Namespace, dumps: int) -> dict:
    result = run([str(binary), str(netns.path), str(dumps)])
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(count: int, tools: dict, netns: Namespace, work: Path, args) -> dict:
    row = {"count": count, **fill(netns, count, work)}
    row["dump"] = nat_dump(tools["nat_dump"], netns, args.dumps)
    monitor = Monitor(tools["portwatch"], netns, work, f"monitor-{count}",
                      args.report_interval, "0")
    monitor.wait_for("report", args.passes, timeout=args.report_interval * (args.passes + 2) + 60)
    row["memory"] = monitor.memory()
    report, stats = monitor.stop()
    row["report_in_use"] = monitor.nat_in_use(report)
    row["nat"] = stats["nat"]
    row["kernel_after"] = netns.count()
    row["kernel_ids"] = netns.distinct_ids()
    row["ok"] = (row["nat"]["mappings"] == count and row["report_in_use"] == count
                 and row["kernel_after"] == count)
    return row


def churn(count: int, tools: dict, netns: Namespace, work: Path, args) -> dict:
    """Events under load, as the header says."""
    netns.flush()
    inserts = write_inserts(work / "churn-insert.txt", 0, count)
    servers = sorted({server_of(i) for i in range(count)}, key=lambda a: int(a.split(".")[3]))
    deleted_servers = servers[::2]
    deleted = sum(1 for i in range(count) if server_of(i) in deleted_servers)
    monitor = Monitor(tools["portwatch"], netns, work, "monitor-churn",
                      args.churn_report_interval, "1s")
    insert_s = netns.load(inserts)
    peak_kernel = netns.count()
    time.sleep(args.churn_pause)
    delete_s = netns.delete_to(deleted_servers)
    kernel = netns.count()
    time.sleep(2.5)
    events = latest_stats(monitor)
    time.sleep(5.5)
    later = latest_stats(monitor)
    reports_before = len(monitor.of_type("report"))
    row = {"count": count, "deleted": deleted, "insert_s": insert_s, "delete_s": delete_s, "peak_kernel": peak_kernel,
           "kernel": kernel, "events_only": reports_before == 0,
           "after_events": events["nat"], "later": later["nat"]}
    monitor.wait_for("report", reports_before + 1, timeout=args.churn_report_interval + 60)
    stats_seen = len(monitor.of_type("stats"))
    monitor.wait_for("stats", stats_seen + 1, timeout=10)  # one written after that pass
    row["after_pass"] = latest_stats(monitor)["nat"]
    report, final = monitor.stop()
    row["report_in_use"] = monitor.nat_in_use(report)
    row["final"] = final["nat"]
    row["kernel_end"] = netns.count()
    row["kernel_ids"] = netns.distinct_ids()
    # 2.5 s after the tool is shown, not held: an overflow's table is read at once and again
    # 2.5 s later (past the model's grace), so the count may still be converging then
    row["ok"] = (row["later"]["mappings"] == kernel
                 and row["after_pass"]["mappings"] == kernel
                 and row["final"]["mappings"] == row["kernel_end"]
                 and row["report_in_use"] == row["kernel_end"])
    return row


def latest_stats(monitor: Monitor) -> dict:
    stats = monitor.of_type("stats")
    if not stats:
        raise bl.BenchError("portwatch monitor wrote no stats line")
    return stats[-1]


# ---- output ---------------------------------------------------------------------------------

def print_header(args, netns: Namespace) -> None:
    print("== portwatch NAT benchmark: a big conntrack table")
    for line in bl.machine_lines(["net.netfilter.nf_conntrack_max"]):
        print(line)
    print(f"netns:     {netns.name} (inode {netns.inode}), nft masquerade rule; entries"
          f" 198.18.x.y -> 198.19.1.D:80 as {NAT_ADDRESS}:1024+, {PER_SERVER} per server")
    print(f"runs:      counts {','.join(map(str, args.counts))}; monitor report every"
          f" {args.report_interval} s, memory after {args.passes} report passes;"
          f" nat_dump x{args.dumps}", flush=True)


def print_rows(rows: list[dict]) -> None:
    print()
    print("entries  fill s  dump ms  us/entry  dump peak MiB  rss MiB  hwm MiB  B/entry rss"
          "  B/entry hwm  nat.mappings  report in_use  overflows  kernel ids  ok")
    base = rows[0] if rows and rows[0]["count"] == 0 else None
    for row in rows:
        rss, hwm = row["memory"]["VmRSS"], row["memory"]["VmHWM"]
        per_rss = per_hwm = None
        if base is not None and row["count"]:
            per_rss = 1024 * (rss - base["memory"]["VmRSS"]) / row["count"]
            per_hwm = 1024 * (hwm - base["memory"]["VmHWM"]) / row["count"]
        dump = row["dump"]
        print(f"{row['count']:7}  {row['fill_s']:6.2f}  {dump['median_ms']:7.1f}"
              f"  {dump['us_per_mapping']:8.2f}  {dump['peak_rss_kib'] / 1024:13.1f}"
              f"  {rss / 1024:7.1f}  {hwm / 1024:7.1f}  {bl.fmt(per_rss, '.0f', 11)}"
              f"  {bl.fmt(per_hwm, '.0f', 11)}  {row['nat']['mappings']:12}"
              f"  {row['report_in_use']:13}  {row['nat']['overflows']:9}  {row['kernel_ids']:10}"
              f"  {'yes' if row['ok'] else 'NO'}")
    print("(fill: conntrack --load-file of N -I lines; dump: median of nat_dump's"
          " dump_nat_mappings() calls, per dump\n and per entry; rss/hwm: the monitor's VmRSS/"
          "VmHWM after its report passes; B/entry: minus the 0 run,\n divided by N;"
          " nat.mappings/overflows: its final stats line; report in_use: its final report's NAT"
          " scopes;\n kernel ids: distinct CTA_IDs in the table (conntrack -L -o id), fewer than N when two entries share one)")


def print_churn(row: dict) -> None:
    print()
    print(f"events under load: {row['count']} entries inserted in {row['insert_s']:.2f} s"
          f" ({row['count'] / row['insert_s']:.0f}/s; kernel count then {row['peak_kernel']}),"
          f" {row['deleted']} deleted in {row['delete_s']:.2f} s;"
          f" kernel count {row['kernel']}")
    when = "before any report pass" if row["events_only"] else "a report pass ran meanwhile"
    for label, nat in (("2.5 s after the tool", row["after_events"]),
                       ("8 s after, " + when, row["later"]),
                       ("after the next report pass", row["after_pass"]),
                       ("final stats", row["final"])):
        print(f"  {label:48} nat.mappings {nat['mappings']:7}  overflows {nat['overflows']}"
              f"  malformed {nat['malformed']}  error {nat['error']}")
    print(f"  final report's NAT in_use {row['report_in_use']}, kernel at the end"
          f" {row['kernel_end']} ({row['kernel_ids']} distinct CTA_IDs):"
          f" {'all equal' if row['ok'] else 'MISMATCH'}")


def main() -> int:
    args = parse_args()
    bl.require_root("portwatch loads BPF programs; a netns is made")
    bl.require_tools("ip", "nft", "conntrack")
    bl.build(args.build_dir, "portwatch", "nat_dump", skip=not args.build)
    tools = {"portwatch": bl.executable(args.build_dir / "portwatch"),
             "nat_dump": bl.executable(args.build_dir / "tests/nat_dump",
                                       " (PORTWATCH_TESTS off?)")}
    work = bl.work_dir(NAME, args.keep)
    raise_conntrack_max(max(args.counts + [args.churn]) + 10000)
    netns = Namespace()
    print_header(args, netns)
    rows = []
    for count in args.counts:
        rows.append(measure(count, tools, netns, work, args))
        print(f"   {count} entries done", flush=True)
    print_rows(rows)
    ok = all(row["ok"] for row in rows)
    if args.churn:
        row = churn(args.churn, tools, netns, work, args)
        print_churn(row)
        ok = ok and row["ok"]
    print()
    print("reproduce: sudo python3 scripts/bench-nat.py " + " ".join(sys.argv[1:]))
    return 0 if ok else bl.EXIT_TARGET_MISSED


if __name__ == "__main__":
    bl.run_main(NAME, main)
