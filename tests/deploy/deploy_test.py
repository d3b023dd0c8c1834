# SPDX-License-Identifier: Apache-2.0
"""The files in deploy/, checked with the tools this machine has.

StaticFiles needs no root: systemd-analyze (verify, security), YAML and JSON parses with the
keys a cluster and Grafana need, promtool on the alert rules and on every dashboard query,
logrotate's parser, and that every metric they name is one docs/metrics.md documents.

AsDeployed needs root: the monitor runs with exactly the unit's capability bounding set and
no_new_privs, under strace, as the unit's ExecStart; it must reach every netns and owner,
serve every metric the dashboard and alerts use, and make no system call, socket family or
setns() that the unit's SystemCallFilter, RestrictAddressFamilies and RestrictNamespaces
would refuse. The DaemonSet's command line runs too, and `check` and `monitor` say so when
they run in a cgroup namespace of their own (why the DaemonSet is privileged).

Run: PORTWATCH_BINARY=build/portwatch python3 -m unittest tests/deploy/deploy_test.py
"""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "portwatch.service"
DAEMONSET = DEPLOY / "kubernetes" / "portwatch.yaml"
DASHBOARD = DEPLOY / "grafana" / "portwatch-dashboard.json"
ALERTS = DEPLOY / "prometheus" / "portwatch-alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "portwatch-alerts.test.yml"
LOGROTATE = DEPLOY / "systemd" / "portwatch.logrotate"
DOCKERFILE = DEPLOY / "container" / "Dockerfile"
METRICS_DOC = ROOT / "docs" / "metrics.md"
BINARY = os.environ.get("PORTWATCH_BINARY", str(ROOT / "build" / "portwatch"))
PROMTOOL = "/usr/bin/promtool"


def run(args, timeout=120, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)


def unit_settings():
    """The [Service] settings of the unit, each key's values in order."""
    settings = {}
    section = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def unit_command():
    """The unit's ExecStart, split into words."""
    return shlex.split(unit_settings()["ExecStart"][0])


def dashboard_queries():
    """Every PromQL expression of the dashboard: panel targets and template variables."""
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(re.sub(r"^label_values\((.*), \w+\)$", r"\1", variable["query"]["query"]))
    return exprs


def as_promql(expr):
    """A dashboard expression with Grafana's variables given values Prometheus accepts."""
    return expr.replace("$__rate_interval", "1m").replace("$instance", ".*").replace("$netns", ".*")


def metric_names(text):
    return set(re.findall(r"\bportwatch_[a-z_]+", text))


def documented_metrics():
    return set(re.findall(r"^\| `(portwatch_[a-z_]+)`", METRICS_DOC.read_text(), re.M))


def daemonset():
    return next(d for d in yaml.safe_load_all(DAEMONSET.read_text()) if d["kind"] == "DaemonSet")


class StaticFiles(unittest.TestCase):
    def test_unit_passes_systemd_analyze_verify(self):
        with tempfile.TemporaryDirectory() as work:
            # verify wants ExecStart's program to exist; the unit names the installed path.
            unit = Path(work) / "portwatch.service"
            unit.write_text(UNIT.read_text().replace("/usr/local/bin/portwatch", BINARY))
            result = run(["systemd-analyze", "verify", str(unit)])
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertEqual(result.stderr.strip(), "")

    def test_unit_exposure_stays_at_most_2_9(self):
        # 2.9 is what this unit scores (systemd 252); the rest is inherent to a BPF agent that
        # must see the host's network and processes. A loosened setting raises it.
        result = run(["systemd-analyze", "security", "--offline=true", "--threshold=29", str(UNIT)])
        self.assertEqual(result.returncode, 0, result.stdout[-3000:])

    def test_unit_drops_every_capability_but_the_six_it_needs(self):
        capabilities = set(unit_settings()["CapabilityBoundingSet"][0].split())
        self.assertEqual(capabilities, {"CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "CAP_SYS_ADMIN",
                                        "CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"})
        self.assertEqual(unit_settings()["NoNewPrivileges"], ["yes"])
        for capability in capabilities:  # each one's reason is written beside it
            self.assertRegex(UNIT.read_text(), rf"#.*{capability}\b.*\w")

    def test_daemonset_is_a_complete_node_agent(self):
        documents = list(yaml.safe_load_all(DAEMONSET.read_text()))
        self.assertEqual([d["kind"] for d in documents], ["Namespace", "ServiceAccount", "DaemonSet"])
        namespace = documents[0]["metadata"]["name"]
        ds = documents[2]
        self.assertEqual(ds["apiVersion"], "apps/v1")
        self.assertEqual(ds["metadata"]["namespace"], namespace)
        spec = ds["spec"]["template"]["spec"]
        labels = ds["spec"]["template"]["metadata"]["labels"]
        for key, value in ds["spec"]["selector"]["matchLabels"].items():
            self.assertEqual(labels[key], value)
        self.assertTrue(spec["hostPID"])
        self.assertTrue(spec["hostNetwork"])
        self.assertEqual(spec["serviceAccountName"], documents[1]["metadata"]["name"])
        self.assertIn({"operator": "Exists"}, spec["tolerations"])
        (container,) = spec["containers"]
        self.assertTrue(container["securityContext"]["privileged"])
        self.assertTrue(container["securityContext"]["readOnlyRootFilesystem"])
        args = container["args"]
        self.assertEqual(args[:2], ["monitor", "--json"])
        self.assertEqual(args[args.index("--events") + 1], "failures", "a volume a node keeps")
        listen = args[args.index("--metrics-listen") + 1]
        self.assertEqual(listen.rsplit(":", 1)[0], "$(HOST_IP)", "the node's address, not all")
        host_ip = next(e for e in container["env"] if e["name"] == "HOST_IP")
        self.assertEqual(host_ip["valueFrom"]["fieldRef"]["fieldPath"], "status.hostIP")
        port = int(listen.rsplit(":", 1)[1])
        self.assertEqual(container["ports"][0]["containerPort"], port)
        annotations = ds["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual(annotations["prometheus.io/port"], str(port))
        for probe in ("readinessProbe", "livenessProbe"):
            self.assertEqual(container[probe]["httpGet"], {"path": "/healthz", "port": port})
        volumes = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"]}
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        self.assertEqual(set(mounts), set(volumes))
        self.assertEqual(volumes["cgroup"], "/sys/fs/cgroup")
        self.assertEqual(mounts["netns"], "/run/netns")

    def test_dashboard_is_a_grafana_dashboard_over_variables_it_defines(self):
        board = json.loads(DASHBOARD.read_text())
        for key in ("title", "uid", "panels", "templating", "schemaVersion"):
            self.assertIn(key, board)
        ids = [p["id"] for p in board["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids are unique")
        defined = {v["name"] for v in board["templating"]["list"]}
        used = set(re.findall(r"\$\{?(\w+)", DASHBOARD.read_text())) - {"__rate_interval"}
        self.assertLessEqual(used, defined)
        for panel in board["panels"]:
            grid = panel["gridPos"]
            self.assertLessEqual(grid["x"] + grid["w"], 24, panel["title"])
            for target in panel.get("targets", []):
                self.assertTrue(target["expr"] and target["refId"], panel["title"])

    def test_every_dashboard_query_is_valid_promql(self):
        rules = {"groups": [{"name": "dashboard", "rules": [
            {"record": f"dashboard:query_{i}", "expr": as_promql(expr)}
            for i, expr in enumerate(dashboard_queries())]}]}
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as file:
            yaml.safe_dump(rules, file)
            file.flush()
            result = run([PROMTOOL, "check", "rules", file.name])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_alert_rules_pass_promtool_and_their_unit_tests(self):
        result = run([PROMTOOL, "check", "rules", str(ALERTS)])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        result = run([PROMTOOL, "test", "rules", ALERT_TESTS.name], cwd=ALERT_TESTS.parent)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_dashboard_and_alerts_use_documented_metrics_only(self):
        used = metric_names(DASHBOARD.read_text()) | metric_names(ALERTS.read_text())
        self.assertGreaterEqual(len(used), 10)
        self.assertLessEqual(used, documented_metrics())

    def test_image_is_the_static_binary_the_daemonset_runs(self):
        # One source of truth: the Dockerfile scripts/package.sh builds (tests/package runs the
        # image itself) and the DaemonSet's image, command and version agree.
        lines = [l for l in DOCKERFILE.read_text().splitlines() if l and not l.startswith("#")]
        self.assertEqual(lines[0], "FROM scratch", "no base image: the binary is static")
        self.assertIn("COPY portwatch /usr/bin/portwatch", lines)
        entrypoint = json.loads(next(l for l in lines if l.startswith("ENTRYPOINT")).split(None, 1)[1])
        container = daemonset()["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(container["command"], entrypoint)
        version = re.search(r"project\(portwatch VERSION ([0-9.]+)",
                            (ROOT / "CMakeLists.txt").read_text()).group(1)
        self.assertEqual(container["image"], f"portwatch:{version}")

    def test_logrotate_rule_parses(self):
        result = run(["logrotate", "--debug", str(LOGROTATE)])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("error", result.stderr.lower())
        self.assertIn("/var/log/portwatch/events.json", result.stderr)
        command = unit_command()
        output = command[command.index("--output") + 1]
        self.assertTrue(LOGROTATE.read_text().startswith("#"))
        self.assertIn(f"\n{output} {{", LOGROTATE.read_text())
        self.assertIn("systemctl reload portwatch.service", LOGROTATE.read_text())
        self.assertEqual(unit_settings()["ExecReload"], ["/bin/kill -HUP $MAINPID"])


def scrape(address):
    """/metrics of the agent at `address`, once it has rendered (503 until then)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
        except urllib.error.HTTPError as error:
            if error.code != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class JsonLines:
    """The JSON lines of a file another process writes, read as they come."""

    def __init__(self, path):
        self.path = Path(path)
        self.offset = 0

    def next(self, matches, writer, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and writer.poll() is None:
            if self.path.exists():
                with open(self.path) as file:
                    file.seek(self.offset)
                    while (line := file.readline()).endswith("\n"):
                        self.offset = file.tell()
                        if matches(event := json.loads(line)):
                            return event
            time.sleep(0.05)
        raise AssertionError(f"no such line in {self.path}; exit {writer.poll()}")

    def all(self):
        return [json.loads(line) for line in self.path.read_text().splitlines()]


def require_root(case):
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            case.fail("not root: CI runs as root and must run these")
        case.skipTest("needs root (BPF, setns, strace of a privileged process)")


# The unit's file-system sandbox, as far as a shell can make it in a new mount namespace:
# read-only everywhere but the log directory ($1: ProtectSystem=strict, LogsDirectory=), /proc/sys
# and /sys (ProtectKernelTunables=, ProtectControlGroups=), and a /dev of the basic devices only
# (PrivateDevices=).
UNIT_FILE_SYSTEM = r"""
set -e
logs=$1; shift
mount --bind "$logs" "$logs"
mount --bind /proc/sys /proc/sys
for m in $(awk '$2 !~ "^/(proc|dev)(/|$)" {print $2}' /proc/self/mounts | sort -u) /proc/sys; do
  [ "$m" = "$logs" ] || mount -o remount,bind,ro "$m" 2>/dev/null || true
done
mount -t tmpfs -o mode=755,nosuid tmpfs /dev
mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5; mknod -m 666 /dev/full c 1 7
mknod -m 666 /dev/random c 1 8; mknod -m 666 /dev/urandom c 1 9
for file in /usr/portwatch-sandbox-check /proc/sys/net/ipv4/ip_forward /sys/fs/portwatch; do
  if touch "$file" 2>/dev/null; then echo "sandbox: $file is writable" >&2; exit 1; fi
done
"""


def syscalls_allowed_by(filter_words):
    """The system calls a SystemCallFilter= allow list admits, groups expanded by systemd."""
    groups, current = {}, None
    for line in run(["systemd-analyze", "syscall-filter"]).stdout.splitlines():
        word = line.strip()
        if line.startswith("@"):
            current = groups.setdefault(word, set())
        elif word and current is not None and not word.startswith("#"):
            current.add(word)

    def expand(word, seen=()):
        if not word.startswith("@"):
            return {word}
        return set().union(*(expand(w, seen + (word,)) for w in groups[word] if w not in seen))

    return set().union(*(expand(w) for w in filter_words))


class AsDeployed(unittest.TestCase):
    def setUp(self):
        require_root(self)
        self.work = Path(tempfile.mkdtemp(prefix="portwatch-deploy-"))
        self.netns = f"portwatch-deploy-{os.getpid()}"
        run(["ip", "netns", "add", self.netns])
        run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        self.children = []

    def tearDown(self):
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.communicate()
        run(["ip", "netns", "del", self.netns])
        shutil.rmtree(self.work, ignore_errors=True)

    def start(self, args, **kwargs):
        child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 **kwargs)
        self.children.append(child)
        return child

    def hold_a_listener_in_the_netns(self):
        """A process of another user (nobody) in the test netns, holding a listener made
        before the monitor started."""
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        holder = self.start(self.in_netns(nobody + ["/usr/bin/python3", "-c",
                             "import socket, sys, time\n"
                             "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
                             "print(s.getsockname()[1], flush=True); time.sleep(120)"]))
        self.assertGreater(int(holder.stdout.readline()), 0, "the listener is up")
        return holder

    def in_netns(self, args):
        # nsenter, not `ip netns exec`: that remounts /sys, hiding the cgroup2 mount.
        return ["nsenter", f"--net=/run/netns/{self.netns}"] + args

    def test_the_unit_s_privileges_and_filters_suffice(self):
        settings = unit_settings()
        capabilities = settings["CapabilityBoundingSet"][0].lower().replace("cap_", "+")
        args = unit_command()[1:]
        args[args.index("--metrics-listen") + 1] = "127.0.0.1:0"
        # the unit writes failures only; every event shows what the privileges let it see
        self.assertEqual(args[args.index("--events") + 1], "failures")
        args[args.index("--events") + 1] = "all"
        output = JsonLines(self.work / "events.json")
        args[args.index("--output") + 1] = str(output.path)
        holder = self.hold_a_listener_in_the_netns()
        trace = self.work / "strace"
        command = ["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=all",
                   "setpriv", f"--bounding-set=-all,{capabilities.replace(' ', ',')}",
                   "--inh-caps=-all", "--no-new-privs", BINARY] + args
        monitor = self.start(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                              UNIT_FILE_SYSTEM + ' exec "$@"', "sandbox", str(self.work)] + command)
        ready = output.next(lambda e: e["type"] == "ready", monitor)
        self.assertEqual(ready["reach"], {"every_netns": True, "every_owner": True,
                                          "every_cgroup": True})
        bound = int(run(self.in_netns(["/usr/bin/python3", "-c", "import socket\n"
                                       "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                                       "s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"]))
                    .stdout)
        event = output.next(lambda e: e.get("local_port") == bound, monitor)
        self.assertEqual((event["type"], event["how"], event["comm"]),
                         ("allocate", "bind_ephemeral", "python3"))
        self.assertEqual(event["cgroup"], open("/proc/self/cgroup").read().split("::")[-1].strip())
        metrics = scrape(ready["metrics"])
        self.assertEqual(re.findall(r"^portwatch_reach\{.*\} (\d)$", metrics, re.M), ["1"] * 3)
        exported = set(re.findall(r"^# TYPE (portwatch_\w+)", metrics, re.M))
        used = metric_names(DASHBOARD.read_text()) | metric_names(ALERTS.read_text())
        self.assertLessEqual(used, exported, "every metric the dashboard and alerts use is served")
        self.assertLessEqual(exported, documented_metrics(), "every served metric is documented")

        os.kill(ready["pid"], signal.SIGTERM)  # the monitor, not strace
        out, err = monitor.communicate(timeout=30)
        self.assertEqual(monitor.returncode, 0, err)
        self.assertEqual(err, "", "no capability is missing, nothing is out of reach")
        self.assertEqual(out, "", "everything goes to --output")
        lines = output.all()
        self.assertEqual(lines[-1]["type"], "stats")
        report = next(line for line in reversed(lines) if line["type"] == "report")
        inode = os.stat(f"/run/netns/{self.netns}").st_ino
        holders = [p for p in report["processes"] if p["netns"] == inode and p["ports_held_total"]]
        self.assertEqual(len(holders), 1, report)
        self.assertEqual(holders[0]["pid"], holder.pid, "the owner of a socket in another netns")
        self.assertEqual(holders[0]["comm"], "python3")
        self.assertEqual(holders[0]["ports_held"], {"tcp": {"bind": 1}, "udp": {}})
        scopes = next(n for n in report["netns"] if n["netns"] == inode)["scopes"]
        self.assertEqual([s["in_use"] for s in scopes if s["scope"] == "bind"], [1])
        self.check_trace_against_the_unit(trace.read_text(), settings)

    def check_trace_against_the_unit(self, trace, settings):
        # setpriv's own calls come before its execve of the monitor.
        trace = trace[trace.index(f'execve("{BINARY}"'):]
        refused = re.findall(r"^\d+\s+((?:setns|open_by_handle_at|openat\(\w+, \"/proc/\d+/fd)"
                             r".*= -1 E(?:PERM|ACCES) .*)$", trace, re.M)
        self.assertEqual(refused, [], "calls the unit's privileges refused")
        calls = re.findall(r"^\d+\s+(?:<\.\.\. )?(\w+)\(", trace, re.M)
        allowed = syscalls_allowed_by(settings["SystemCallFilter"][0].split())
        self.assertGreater(len(set(calls)), 20)
        self.assertEqual(set(calls) - allowed, set(), "calls SystemCallFilter would refuse")
        families = set(re.findall(r"\bsocket\((AF_\w+)", trace))
        self.assertIn("AF_NETLINK", families)
        self.assertLessEqual(families, set(settings["RestrictAddressFamilies"][0].split()))
        self.assertEqual(settings["RestrictNamespaces"], ["net"])
        self.assertEqual(set(re.findall(r"\bsetns\(\d+, (\w+)\)", trace)), {"CLONE_NEWNET"})
        self.assertNotRegex(trace, r"\b(unshare|clone3?)\([^)]*CLONE_NEW",
                            "no new namespaces of any kind")

    def test_a_cgroup_namespace_of_its_own_is_reported(self):
        mount = next(line.split()[1] for line in open("/proc/mounts") if line.split()[2] == "cgroup2")
        cgroup = Path(mount) / f"portwatch-cgns-test-{os.getpid()}"
        cgroup.mkdir()
        try:
            # A shell in a new cgroup moves itself there, then into a new cgroup and mount
            # namespace with cgroup2 mounted afresh: what a container runtime does.
            script = (f"echo $$ > {cgroup}/cgroup.procs && exec unshare --cgroup --mount "
                      f"--propagation private sh -c 'umount {mount} && mount -t cgroup2 none {mount}"
                      f" && {BINARY} check --json && exec {BINARY} monitor --json --duration 1'")
            result = run(["sh", "-c", script])
        finally:
            cgroup.rmdir()
        check = json.loads(result.stdout.splitlines()[0])
        finding = next(c for c in check["checks"] if c["name"] == "cgroup")
        self.assertFalse(finding["ok"], check)
        self.assertIn("run in the host's cgroup namespace", finding["detail"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("portwatch: the cgroup2 mount is not the root cgroup", result.stderr)
        ready = json.loads(result.stdout.splitlines()[1])
        self.assertEqual(ready["reach"]["every_cgroup"], False, ready)
        check = json.loads(run([BINARY, "check", "--json"]).stdout)
        self.assertTrue(next(c for c in check["checks"] if c["name"] == "cgroup")["ok"])

    def test_the_daemonset_command_line_runs(self):
        container = daemonset()["spec"]["template"]["spec"]["containers"][0]
        # The node's address, as the kubelet expands $(HOST_IP); in the test's netns, so that
        # the port it names is free.
        args = [arg.replace("$(HOST_IP)", "127.0.0.1") for arg in container["args"]]
        monitor = self.start(self.in_netns([BINARY] + args + ["--duration", "1"]))
        out, err = monitor.communicate(timeout=60)
        self.assertEqual(monitor.returncode, 0, err)
        lines = [json.loads(line) for line in out.splitlines()]
        self.assertEqual(lines[0]["type"], "ready")
        self.assertTrue(lines[0]["metrics"].endswith(":9464"), lines[0])
        self.assertEqual(lines[-1]["type"], "stats")


if __name__ == "__main__":
    unittest.main()
