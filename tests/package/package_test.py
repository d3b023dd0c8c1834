# SPDX-License-Identifier: Apache-2.0
"""The release artifacts of scripts/package.sh (dist/), proven where they were not built.

StaticBinary: dist/portwatch is one static executable, small, with the version CMake gives.
EmptyRoot: dist/portwatch alone in an empty root file system (only /proc, /sys, /dev mounted)
  monitors ports allocated on the host and in another netns, and opens no file outside those.
Deb: the .deb installs in a clean debootstrap'd Debian 12, runs there, and purges to nothing;
  lintian reports no error.
Licences: every source file names its licence (SPDX), and the licence texts are there.
Image: the OCI archive loads in podman and runs with exactly the DaemonSet's privileges,
  mounts and command line; it sees a port allocated on the host and in another netns, with
  owners.

Run: python3 -m unittest tests/package/package_test.py (root; after scripts/package.sh).
Outside CI a missing dist/ skips; under CI=true it fails.
"""
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "deploy"))
from deploy_test import JsonLines, daemonset, require_root, run  # noqa: E402

DIST = ROOT / "dist"
STATIC = DIST / "portwatch"
VERSION = re.search(r"project\(portwatch VERSION ([0-9.]+)", (ROOT / "CMakeLists.txt").read_text())[1]
CACHE = Path(os.environ.get("PORTWATCH_CACHE",
                            Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                            / "portwatch-package"))


def require_dist(case):
    if not STATIC.exists():
        if os.environ.get("CI") == "true":
            case.fail("dist/ is missing: scripts/test.sh runs scripts/package.sh before the tests")
        case.skipTest("no dist/: run scripts/package.sh first")


def git_revision():
    return run(["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--abbrev=12",
                "--exclude=*"]).stdout.strip()


class PortHolders:
    """Sockets the test binds with port 0 on the host and in a netns of its own, each held
    by a process whose pid the test knows; the kernel's port is read with getsockname()."""

    def __init__(self, case):
        self.netns = f"portwatch-package-{os.getpid()}"
        run(["ip", "netns", "add", self.netns])
        run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        case.addCleanup(run, ["ip", "netns", "del", self.netns])
        self.case = case

    def bind_in(self, netns):
        """(pid, port, netns inode) of a python3 holding a TCP port bound to port 0."""
        prefix = ["nsenter", f"--net=/run/netns/{netns}"] if netns else []
        holder = subprocess.Popen(
            prefix + ["/usr/bin/python3", "-c",
                      "import socket, time\ns = socket.socket(); s.bind(('127.0.0.1', 0))\n"
                      "print(s.getsockname()[1], flush=True); time.sleep(60)"],
            stdout=subprocess.PIPE, text=True)
        self.case.addCleanup(holder.communicate)
        self.case.addCleanup(holder.kill)
        port = int(holder.stdout.readline())
        inode = os.stat(f"/proc/{holder.pid}/ns/net").st_ino
        return holder.pid, port, inode

    def expect_both(self, lines, monitor):
        """Binds on the host and in the netns; each must come back as an allocate line with
        the port, owner and netns the kernel gave."""
        for netns in (None, self.netns):
            pid, port, inode = self.bind_in(netns)
            event = lines.next(lambda e, p=port, i=inode: e.get("type") == "allocate"
                               and e.get("local_port") == p and e.get("netns") == i, monitor)
            self.case.assertEqual((event["how"], event["pid"], event["comm"], event["proto"]),
                                  ("bind_ephemeral", pid, "python3", "tcp"))


class StaticBinary(unittest.TestCase):
    def setUp(self):
        require_dist(self)

    def test_one_static_executable(self):
        self.assertRegex(run(["file", "-L", str(STATIC)]).stdout, r"statically linked")
        self.assertNotIn("NEEDED", run(["readelf", "-d", str(STATIC)]).stdout)
        self.assertNotIn("INTERP", run(["readelf", "-l", str(STATIC)]).stdout)
        size = STATIC.stat().st_size
        print(f"dist/portwatch: {size} bytes stripped", file=sys.stderr)
        self.assertLess(size, 20 * 1024 * 1024)

    def test_version_is_cmake_s_with_git_s_revision(self):
        result = run([str(STATIC), "--version"])
        abi = re.search(r"#define PW_ABI_VERSION (\d+)", (ROOT / "bpf" / "portwatch_abi.h").read_text())[1]
        self.assertEqual(result.stdout,
                         f"portwatch {VERSION} (revision {git_revision()}, BPF ABI {abi})\n")

    def test_sha256sums_cover_every_artifact(self):
        sums = dict(reversed(line.split()) for line in (DIST / "SHA256SUMS").read_text().splitlines())
        self.assertEqual(set(sums), {"portwatch", f"portwatch-{VERSION}-linux-x86_64.tar.gz",
                                     f"portwatch_{VERSION}_amd64.deb", f"portwatch-{VERSION}-oci.tar"})
        result = run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=DIST)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_tarball_holds_the_binary_docs_and_licences(self):
        name = f"portwatch-{VERSION}-linux-x86_64"
        listed = set(run(["tar", "-tzf", str(DIST / f"{name}.tar.gz")]).stdout.split())
        expected = {"portwatch", "portwatch.8", "completions/portwatch.bash",
                    "completions/_portwatch", "completions/portwatch.fish",
                    "systemd/portwatch.service", "logrotate/portwatch", "README.md", "LICENSE",
                    "LICENSES/Apache-2.0.txt", "LICENSES/GPL-2.0-only.txt", "COPYRIGHT"}
        self.assertLessEqual({f"{name}/{path}" for path in expected}, listed)


# Which licence each part of the tree is under (LICENSE): the BPF programs GPL-2.0-only, the
# header both sides share dual, everything else Apache-2.0.
SOURCE_FILE = re.compile(r"(\.(cpp|h|c|py|sh|cmake|ya?ml|service|logrotate|conf)|/CMakeLists\.txt|"
                         r"/Dockerfile|^CMakeLists\.txt|^deploy/debian/(rules|postrm))$")


def expected_licence(path):
    if path == "bpf/portwatch_abi.h":
        return "GPL-2.0-only OR Apache-2.0"
    if path.startswith("bpf/") or path.endswith(".bpf.c"):
        return "GPL-2.0-only"
    return "Apache-2.0"


class Licences(unittest.TestCase):
    def test_every_source_file_names_its_licence(self):
        files = run(["git", "-C", str(ROOT), "ls-files"]).stdout.split()
        sources = [f for f in files if SOURCE_FILE.search(f) and not f.startswith("tests/fuzz/corpus/")]
        self.assertGreater(len(sources), 150)
        for path in sources:
            head = (ROOT / path).read_text(errors="replace")[:400]
            found = re.search(r"SPDX-License-Identifier: (.+?)\s*(\*/)?$", head, re.M)
            self.assertIsNotNone(found, f"{path} has no SPDX-License-Identifier line")
            self.assertEqual(found[1], expected_licence(path), path)

    def test_the_licence_texts_are_there(self):
        for text in ("Apache-2.0.txt", "GPL-2.0-only.txt"):
            self.assertGreater((ROOT / "LICENSES" / text).stat().st_size, 10000)
        self.assertIn('SEC("license") = "GPL"', (ROOT / "bpf" / "portwatch.bpf.c").read_text())


# What the binary may open in an empty root: the kernel's file systems, the named network
# namespaces (`ip netns add`) and the time zone (UTC where there is none), all optional. Not a
# library, a locale, gconv, NSS (/etc/nsswitch.conf, /etc/passwd) or anything else of a userland.
# Relative paths are openat()s under a /proc or /sys directory it opened.
MAY_OPEN = re.compile(r'^"(/(proc|sys|dev|run/netns)(/|")|/etc/localtime"|[^/])')


class EmptyRoot(unittest.TestCase):
    def setUp(self):
        require_root(self)
        require_dist(self)
        self.root = Path(tempfile.mkdtemp(prefix="portwatch-empty-root-"))
        self.addCleanup(shutil.rmtree, self.root, ignore_errors=True)
        for directory in ("proc", "sys", "dev"):
            (self.root / directory).mkdir()
        shutil.copy2(STATIC, self.root / "portwatch")

    def chrooted(self, *args):
        """The binary in the empty root, in a private mount namespace (nothing left behind)."""
        script = ('for d in proc sys dev; do mount --rbind /$d "$0/$d"; done; '
                  'exec chroot "$0" /portwatch "$@"')
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(self.root),
                *args]

    def traced(self, command):
        """`command` under strace for the files it opens, and the trace's path."""
        trace = self.root.parent / f"{self.root.name}.strace"
        self.addCleanup(lambda: trace.unlink(missing_ok=True))
        return ["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=open,openat,execve",
                *command], trace

    def files_opened_outside_the_kernel_file_systems(self, trace):
        text = trace.read_text()
        text = text[text.index('execve("/portwatch"'):]  # the binary's calls, not sh's or chroot's
        opened = re.findall(r'open(?:at)?\((?:AT_FDCWD|\d+), ("[^"]*")', text)
        return sorted({path for path in opened if not MAY_OPEN.match(path)})

    def test_monitor_sees_the_host_and_another_netns(self):
        holders = PortHolders(self)
        command, trace = self.traced(self.chrooted("monitor", "--json", "--duration", "60"))
        output = self.root / "out.json"
        with open(output, "w") as out:
            monitor = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: monitor.poll() is None and monitor.kill())
        lines = JsonLines(output)
        ready = lines.next(lambda e: e["type"] == "ready", monitor, timeout=60)
        self.assertEqual(ready["version"], VERSION)
        self.assertEqual(ready["reach"], {"every_netns": True, "every_owner": True,
                                          "every_cgroup": True})
        holders.expect_both(lines, monitor)
        os.kill(ready["pid"], 15)
        _, err = monitor.communicate(timeout=30)
        self.assertEqual(monitor.returncode, 0, err)
        self.assertEqual(self.files_opened_outside_the_kernel_file_systems(trace), [],
                         "no library, locale, NSS or other file outside the binary")

    def test_check_and_top_in_the_empty_root(self):
        command, trace = self.traced(self.chrooted("check", "--json"))
        result = run(command)
        self.assertEqual(result.returncode, 0, result.stderr)
        checks = json.loads(result.stdout)
        self.assertTrue(checks["monitor"], checks)
        self.assertEqual(self.files_opened_outside_the_kernel_file_systems(trace), [])
        # top needs a terminfo entry, which an empty root lacks: one clear line, no curses exit.
        result = run(["script", "-qec", shlex.join(self.chrooted("top")), "/dev/null"],
                     env={"TERM": "xterm", "PATH": os.environ["PATH"]})
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("portwatch: top: no terminfo entry for TERM=xterm", result.stdout)


def debian_mirror():
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        return re.search(r"^URIs:\s*(\S+)", sources.read_text(), re.M)[1]
    return "http://deb.debian.org/debian"


def clean_bookworm(into):
    """A minbase bookworm, from a tarball kept in the cache after the first debootstrap."""
    tarball = CACHE / "bookworm-minbase.tar.gz"
    if not tarball.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        fresh = Path(tempfile.mkdtemp(prefix="portwatch-debootstrap-"))
        try:
            result = run(["debootstrap", "--variant=minbase", "bookworm", str(fresh),
                          debian_mirror()], timeout=900)
            if result.returncode != 0:
                raise AssertionError(f"debootstrap failed: {result.stderr[-2000:]}")
            run(["tar", "-czf", f"{tarball}.part", "-C", str(fresh), "."], timeout=300)
            os.rename(f"{tarball}.part", tarball)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
    run(["tar", "-xzf", str(tarball), "-C", str(into)], timeout=300)


# Paths a package install and purge may change besides the package's own (dpkg's records,
# logs and caches).
BOOKKEEPING = re.compile(r"^/(var/lib/dpkg|var/log|var/cache|proc|sys|dev|tmp)(/|$)")


class Deb(unittest.TestCase):
    def setUp(self):
        require_root(self)
        require_dist(self)
        self.deb = DIST / f"portwatch_{VERSION}_amd64.deb"
        self.root = Path(tempfile.mkdtemp(prefix="portwatch-bookworm-"))
        self.addCleanup(shutil.rmtree, self.root, ignore_errors=True)

    def in_chroot(self, script):
        return run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                    'for d in proc sys dev; do mount --rbind /$d "$0/$d"; done; '
                    'exec chroot "$0" /bin/sh -c "$1"', str(self.root), script], timeout=300)

    def physical(self, path):
        """`path` inside the chroot with a linked top directory resolved (merged /usr: /lib
        is usr/lib)."""
        top, rest = path.lstrip("/").split("/", 1)
        if (self.root / top).is_symlink():
            top = os.readlink(self.root / top).lstrip("/")
        return f"/{top}/{rest}"

    def tree(self):
        """Every path of the chroot but dpkg's bookkeeping, with its type and mode."""
        paths = set()
        for directory, dirs, files in os.walk(self.root):
            for name in dirs + files:
                path = os.path.join(directory, name)
                relative = "/" + os.path.relpath(path, self.root)
                if not BOOKKEEPING.match(relative):
                    paths.add((relative, os.lstat(path).st_mode))
        return paths

    def test_installs_runs_and_purges_cleanly_in_a_clean_bookworm(self):
        clean_bookworm(self.root)
        before = self.tree()
        shutil.copy2(self.deb, self.root / "tmp" / self.deb.name)
        result = self.in_chroot(f"dpkg -i /tmp/{self.deb.name}")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        installed = {p for p, _ in self.tree() - before}
        for path in ["/usr/bin/portwatch", "/lib/systemd/system/portwatch.service",
                     "/etc/logrotate.d/portwatch", "/usr/share/man/man8/portwatch.8.gz",
                     "/usr/share/bash-completion/completions/portwatch",
                     "/usr/share/doc/portwatch/copyright",
                     # dh_installsystemd's postinst enables it, as Debian's daemons are
                     "/etc/systemd/system/multi-user.target.wants/portwatch.service"]:
            self.assertIn(self.physical(path), installed)
        unit = (self.root / "lib/systemd/system/portwatch.service").read_text()
        self.assertIn("ExecStart=/usr/bin/portwatch monitor", unit)
        result = self.in_chroot("portwatch --version && portwatch check --json")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(result.stdout.startswith(f"portwatch {VERSION} "), result.stdout)
        self.assertTrue(json.loads(result.stdout.splitlines()[1])["monitor"])
        (self.root / "var/log/portwatch").mkdir(exist_ok=True)  # what systemd's LogsDirectory= makes
        result = self.in_chroot("dpkg --purge portwatch")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertFalse((self.root / "var/log/portwatch").exists(), "purge removes the event log")
        (self.root / "tmp" / self.deb.name).unlink()
        self.assertEqual(self.tree() ^ before, set(), "what install left after purge")

    def test_lintian_reports_no_errors(self):
        result = run(["lintian", "--no-tag-display-limit", str(self.deb)], timeout=300)
        print(result.stdout, file=sys.stderr)
        errors = [line for line in result.stdout.splitlines() if line.startswith("E:")]
        self.assertEqual(errors, [])


def podman(*args, timeout=300):
    return run(["podman", *args], timeout=timeout)


def daemonset_run_options(container, pod):
    """podman run options for exactly the pod spec's privileges, namespaces and mounts."""
    options = ["--runtime", "runc"]
    context = container["securityContext"]
    if context.get("privileged"):
        options.append("--privileged")
    if "runAsUser" in context:
        options += ["--user", str(context["runAsUser"])]
    if context.get("readOnlyRootFilesystem"):
        options.append("--read-only")
    if pod.get("hostPID"):
        options.append("--pid=host")
    if pod.get("hostNetwork"):
        options.append("--network=host")
    volumes = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        propagation = {"HostToContainer": ",rslave"}.get(mount.get("mountPropagation"), "")
        mode = "ro" if mount.get("readOnly") else "rw"
        options += ["-v", f"{volumes[mount['name']]}:{mount['mountPath']}:{mode}{propagation}"]
    # Not the pod spec's, this machine's: podman's default limits exceed its hard limits, and
    # runc is refused (EPERM) even the current hard RLIMIT_NPROC; the agent runs ~10 threads.
    nofile = subprocess.run(["sh", "-c", "ulimit -Hn"], capture_output=True, text=True).stdout.strip()
    options += ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", "nproc=4096:4096"]
    return options


class Image(unittest.TestCase):
    def setUp(self):
        require_root(self)
        require_dist(self)
        self.archive = DIST / f"portwatch-{VERSION}-oci.tar"

    def test_runs_with_the_daemonset_s_privileges_and_sees_both_netns(self):
        result = podman("load", "-q", "-i", str(self.archive))
        self.assertEqual(result.returncode, 0, result.stderr)
        pod = daemonset()["spec"]["template"]["spec"]
        container = pod["containers"][0]
        image = f"localhost/{container['image']}"
        self.assertEqual(container["image"], f"portwatch:{VERSION}")
        inspect = json.loads(podman("image", "inspect", image).stdout)[0]
        self.assertEqual(inspect["Config"]["Entrypoint"], container["command"])
        holders = PortHolders(self)
        args = [a.replace("$(HOST_IP)", "127.0.0.1") for a in container["args"]]
        # All events (the DaemonSet writes failures only) and a free metrics port; the rest as is.
        args[args.index("--events") + 1] = "all"
        args[args.index("--metrics-listen") + 1] = "127.0.0.1:0"
        name = f"portwatch-image-test-{os.getpid()}"
        output = Path(tempfile.mkdtemp(prefix="portwatch-image-")) / "out.json"
        self.addCleanup(shutil.rmtree, output.parent, ignore_errors=True)
        self.addCleanup(podman, "rm", "-f", "-t", "0", name)
        with open(output, "w") as out:
            monitor = subprocess.Popen(
                ["podman", "run", "--rm", "--name", name,
                 *daemonset_run_options(container, pod), "--entrypoint", container["command"][0],
                 image, *args],
                stdout=out, stderr=subprocess.PIPE, text=True)
        lines = JsonLines(output)
        ready = lines.next(lambda e: e["type"] == "ready", monitor, timeout=90)
        self.assertEqual(ready["version"], VERSION)
        holders.expect_both(lines, monitor)
        result = podman("stop", "-t", "20", name, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        _, err = monitor.communicate(timeout=30)
        self.assertEqual(monitor.returncode, 0, err)
        self.assertEqual(lines.all()[-1]["type"], "stats")


if __name__ == "__main__":
    unittest.main()
