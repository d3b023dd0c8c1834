#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A bounded soak of the monitor: N minutes of loopback load in a network namespace of its own.

The load: TCP connect/close across 50 local listeners (the client closes first, so its ports
go to TIME_WAIT) plus UDP sends from unbound sockets, at --rate connections a second. The
monitor runs filtered to that namespace with --metrics-listen and --output, as deployed.
Every --sample seconds: its RSS, open fds and threads. At the end, with the load stopped,
the final report (made right after a reconciliation) is compared per destination scope with
the kernel's table read just before and just after it: TIME_WAIT only expires then, so the
report's in_use and time_wait must lie between the two readings.

Verdict (exit 0 only if all hold): RSS flat after warm-up (the first third of the run, and at
least the 75 s TIME_WAIT takes to reach its steady number) within
5 %, fds flat (within 2), no event lost and no output line lost, the counts as the kernel's.

  sudo python3 scripts/soak.py [--minutes 10] [--rate 1000] [--build build]
"""
import argparse
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

LISTEN_PORTS = range(20000, 20050)  # below the ephemeral range: no bind-scope capacity taken
UDP_PORT = 20100


def run_load(seconds, rate):
    """The load itself, run inside the namespace (`ip netns exec`)."""
    selector = selectors.DefaultSelector()
    for port in LISTEN_PORTS:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", port))
        listener.listen(1024)
        listener.setblocking(False)
        selector.register(listener, selectors.EVENT_READ, "listener")
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", UDP_PORT))
    end = time.monotonic() + seconds
    made = 0
    started = time.monotonic()
    while time.monotonic() < end:
        port = LISTEN_PORTS[made % len(LISTEN_PORTS)]
        client = socket.create_connection(("127.0.0.1", port))
        serve(selector)
        client.close()  # first: the client's port goes to TIME_WAIT
        if made % 10 == 0:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.sendto(b"x", ("127.0.0.1", UDP_PORT))  # sendto autobind
            udp.close()
            try:
                sink.recv(16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
        made += 1
        ahead = made / rate - (time.monotonic() - started)
        if ahead > 0:
            serve(selector)
            time.sleep(ahead)
    serve(selector, 0.5)
    print(json.dumps({"connections": made}), flush=True)


def serve(selector, timeout=0):
    """Accepts what is waiting; closes accepted sockets once their client has closed."""
    for key, _ in selector.select(timeout):
        if key.data == "listener":
            try:
                connection, _ = key.fileobj.accept()
            except BlockingIOError:
                continue
            connection.setblocking(False)
            selector.register(connection, selectors.EVENT_READ, "connection")
        else:
            try:
                if key.fileobj.recv(64):
                    continue
            except (BlockingIOError, ConnectionError):
                pass
            selector.unregister(key.fileobj)
            key.fileobj.close()


def process_figures(pid):
    status = {}
    with open(f"/proc/{pid}/status") as lines:
        for line in lines:
            name, _, value = line.partition(":")
            status[name] = value.split()
    return {"rss_kb": int(status["VmRSS"][0]), "threads": int(status["Threads"][0]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def kernel_destinations(netns, time_wait_in_use):
    """(remote port) -> [ports in use, ports in TIME_WAIT] of TCP client sockets, from ss.
    A TIME_WAIT port is in use unless connect() may reuse it: tcp_tw_reuse 1, or 2 (the
    default) towards loopback, which is what the load uses."""
    out = subprocess.run(["ip", "netns", "exec", netns, "ss", "-tanH"], check=True,
                         capture_output=True, text=True).stdout
    scopes = {}
    for line in out.splitlines():
        state, _, _, local, peer = line.split()[:5]
        peer_port = int(peer.rsplit(":", 1)[1])
        if state == "LISTEN" or peer_port not in LISTEN_PORTS:
            continue  # listeners and the servers' accepted sockets
        counts = scopes.setdefault(peer_port, [0, 0])
        counts[0] += state != "TIME-WAIT" or time_wait_in_use
        counts[1] += state == "TIME-WAIT"
    return scopes


def report_destinations(report):
    scopes = {}
    for ns in report["netns"]:
        for scope in ns["scopes"]:
            if scope["scope"] == "destination" and scope["remote_port"] in LISTEN_PORTS:
                scopes[scope["remote_port"]] = [scope["in_use"], scope["time_wait"]]
    return scopes


def counts_match(before, report, after):
    """Every destination's report counts lie between the kernel's readings around it."""
    mismatches = []
    for port in sorted(set(before) | set(report) | set(after)):
        low = [min(a, b) for a, b in zip(before.get(port, [0, 0]), after.get(port, [0, 0]))]
        high = [max(a, b) for a, b in zip(before.get(port, [0, 0]), after.get(port, [0, 0]))]
        got = report.get(port, [0, 0])
        if not all(lo <= g <= hi for lo, g, hi in zip(low, got, high)):
            mismatches.append(f"127.0.0.1:{port}: report {got}, kernel {before.get(port)} .. "
                              f"{after.get(port)}")
    return mismatches


def lines_of(path):
    with open(path) as file:
        return [json.loads(line) for line in file]


def soak(args):
    seconds = args.seconds or args.minutes * 60
    netns = f"portwatch-soak-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    workdir = tempfile.mkdtemp(prefix="portwatch-soak-")
    output = os.path.join(workdir, "events.json")
    monitor = load = None
    try:
        subprocess.run(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"], check=True)
        inode = os.stat(f"/run/netns/{netns}").st_ino
        monitor = subprocess.Popen(
            [os.path.join(args.build, "portwatch"), "monitor", "--json", "--netns", str(inode),
             "--metrics-listen", "127.0.0.1:0", "--output", output, "--events", "all",
             "--stats-interval", "10", "--report-interval", "10",
             "--report-top", "0"], stderr=subprocess.PIPE)
        ready = wait_for_ready(output, monitor)
        load = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, __file__, "--load",
                                 "--seconds", str(seconds), "--rate", str(args.rate)],
                                stdout=subprocess.PIPE, text=True)
        samples = sample_while(load, monitor.pid, args.sample, ready["metrics"])
        made = json.loads(load.stdout.read() or "{}").get("connections", 0)
        load.wait()
        time.sleep(1)  # the last events read
        before = kernel_destinations(netns, False)
        monitor.send_signal(signal.SIGTERM)  # the final report: drained, reconciled
        errors = monitor.communicate(timeout=60)[1].decode()
        after = kernel_destinations(netns, False)
        lines = lines_of(output)
        result = verdict(samples, lines, before, after, made, seconds, errors, monitor.returncode)
        if result and args.keep:
            subprocess.run(["cp", output, args.keep], check=False)
            print(f"soak: the monitor's output kept in {args.keep}")
        return result
    finally:
        for process in (load, monitor):
            if process and process.poll() is None:
                process.kill()
        subprocess.run(["ip", "netns", "delete", netns], check=False)
        subprocess.run(["rm", "-rf", workdir], check=False)


def wait_for_ready(output, monitor):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if monitor.poll() is not None:
            sys.exit("soak: the monitor stopped: " + monitor.stderr.read().decode())
        if os.path.exists(output):
            for line in lines_of(output):
                if line["type"] == "ready":
                    return line
        time.sleep(0.2)
    sys.exit("soak: no ready line within 60 s")


def sample_while(load, pid, every, metrics_address):
    samples = []
    started = time.monotonic()
    while load.poll() is None:
        figures = process_figures(pid)
        figures["t_s"] = round(time.monotonic() - started)
        figures["healthz"], reason = healthz(metrics_address)
        if reason:
            figures["healthz_reason"] = reason
        samples.append(figures)
        print("soak: " + json.dumps(figures), flush=True)
        deadline = time.monotonic() + every
        while load.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
    return samples


def healthz(metrics_address):
    """/healthz's status, and its body when it is not 200 (the agent's reason)."""
    try:
        with urllib.request.urlopen(f"http://{metrics_address}/healthz", timeout=5) as reply:
            return reply.status, None
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace").strip()
    except OSError as error:
        return None, str(error)


def verdict(samples, lines, before, after, made, seconds, errors, exit_code):
    # Warm-up: TIME_WAIT fills for its first 60 s (TCP_TIMEWAIT_LEN), and the model with it.
    warm = [s for s in samples if s["t_s"] >= max(seconds / 3, 75)] or samples[-1:]
    rss = [s["rss_kb"] for s in warm]
    fds = [s["fds"] for s in warm]
    stats = [line for line in lines if line["type"] == "stats"][-1]
    report = [line for line in lines if line["type"] == "report"][-1]
    mismatches = counts_match(before, report_destinations(report), after)
    checks = {
        "monitor exited 0": exit_code == 0,
        f"RSS flat after warm-up (within 5 %): {min(rss)}..{max(rss)} kB":
            max(rss) <= min(rss) * 1.05,
        f"fds flat: {min(fds)}..{max(fds)}": max(fds) - min(fds) <= 2,
        f"/healthz 200 at every sample": all(s["healthz"] == 200 for s in samples),
        f"0 lost: {stats['lost_total']} events, {stats['output_lines_lost']} lines":
            stats["lost_total"] == 0 and stats["output_lines_lost"] == 0,
        f"{len(before)} destinations' in_use and time_wait as the kernel's":
            not mismatches and len(before) == 50,
    }
    print(f"soak: {made} connections in {seconds} s ({made / seconds:.0f}/s), "
          f"{stats['events']['allocate']['seen']} allocations seen, "
          f"threads {samples[-1]['threads']}, RSS peak {max(s['rss_kb'] for s in samples)} kB")
    reported = report_destinations(report)
    print(f"soak: TIME_WAIT towards the listeners: report {sum(c[1] for c in reported.values())}, "
          f"kernel {sum(c[1] for c in before.values())} before it and "
          f"{sum(c[1] for c in after.values())} after")
    for mismatch in mismatches[:10]:
        print("soak: mismatch " + mismatch)
    if errors.strip():
        print("soak: monitor stderr: " + errors.strip())
    for check, holds in checks.items():
        print(f"soak: {'ok  ' if holds else 'FAIL'} {check}")
    return 0 if all(checks.values()) else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--seconds", type=float, help="instead of --minutes (the CI run)")
    parser.add_argument("--rate", type=int, default=1000, help="connections a second")
    parser.add_argument("--sample", type=float, default=30, help="seconds between samples")
    parser.add_argument("--build", default="build")
    parser.add_argument("--keep", metavar="FILE", help="keep the monitor's output here on failure")
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        run_load(args.seconds, args.rate)
        return 0
    if args.rate <= 0 or args.rate > 5000 or (args.seconds or args.minutes * 60) > 3600:
        parser.error("bounded: --rate in (0, 5000], at most an hour")
    if os.geteuid() != 0:
        sys.exit("soak: needs root (a network namespace and the BPF programs)")
    return soak(args)


if __name__ == "__main__":
    sys.exit(main())
