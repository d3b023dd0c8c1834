// SPDX-License-Identifier: Apache-2.0
// hook_floor: attaches trivial BPF programs (tests/bench/hook_floor.bpf.c) and holds them attached
// until SIGINT or SIGTERM, for scripts/bench-cost.py and scripts/bench-vm.py.
//
// Usage: hook_floor [--object PATH] PROGRAM_NAME...
//   PROGRAM_NAME  a program in the object, e.g. floor_sys_exit, floor_sockops_noop. Only the named
//                 programs are loaded. cgroup and sockops programs are attached to the cgroup2 root
//                 (from /proc/mounts), the others (tp_btf) to their tracepoints.
//   --object P    the BPF object (default: the hook_floor.bpf.o this build made)
//
// Prints "ready" (flushed) once every program is attached, then waits for SIGINT or SIGTERM,
// detaches and exits 0. On any failure: one line on stderr and exit 1 (usage errors: exit 2).

#include <bpf/libbpf.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "system/mounts.h"

#ifndef HOOK_FLOOR_BPF_OBJECT
#error "HOOK_FLOOR_BPF_OBJECT (path of hook_floor.bpf.o) must be defined by the build"
#endif

namespace {

[[noreturn]] void usage(const char *why) {
    std::fprintf(stderr,
                 "hook_floor: %s\n"
                 "usage: hook_floor [--object PATH] PROGRAM_NAME...\n",
                 why);
    std::exit(2);
}

[[noreturn]] void fail(const std::string &what, int err = 0) {
    if (err != 0)
        std::fprintf(stderr, "hook_floor: %s: %s\n", what.c_str(), std::strerror(err));
    else
        std::fprintf(stderr, "hook_floor: %s\n", what.c_str());
    std::exit(1);
}

// libbpf's warnings only (its info and debug output would bury the one-line error).
int print_libbpf(enum libbpf_print_level level, const char *format, va_list args) {
    if (level != LIBBPF_WARN) return 0;
    return std::vfprintf(stderr, format, args);
}

void ignore_signal(int) {}

// libbpf (1.0 and later) returns NULL with the cause in errno, or -errno.
int last_error() {
    return errno != 0 ? errno : EINVAL;
}

bool attaches_to_cgroup(const bpf_program *prog) {
    switch (bpf_program__expected_attach_type(prog)) {
        case BPF_CGROUP_INET_SOCK_CREATE:
        case BPF_CGROUP_INET_SOCK_RELEASE:
        case BPF_CGROUP_SOCK_OPS:
            return true;
        default:
            return false;
    }
}

int open_cgroup2_root() {
    std::ifstream mounts("/proc/mounts");
    if (!mounts) fail("cannot read /proc/mounts", errno);
    auto root = portwatch::find_cgroup2_mount(mounts);
    if (!root) fail("no cgroup2 file system in /proc/mounts");
    int fd = open(root->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) fail("cannot open the cgroup2 root " + *root, errno);
    return fd;
}

}  // namespace

int main(int argc, char **argv) {
    std::string object_path = HOOK_FLOOR_BPF_OBJECT;
    std::vector<std::string> names;
    for (int i = 1; i < argc; i++) {
        std::string_view arg = argv[i];
        if (arg == "--object") {
            if (++i == argc) usage("--object needs a path");
            object_path = argv[i];
        } else if (arg == "-h" || arg == "--help") {
            usage("attach trivial BPF programs until SIGINT/SIGTERM");
        } else if (arg.starts_with("-")) {
            usage(("unknown option " + std::string(arg)).c_str());
        } else {
            for (const auto &name : names)
                if (name == arg) usage(("program named twice: " + name).c_str());
            names.emplace_back(arg);
        }
    }
    if (names.empty()) usage("no program named");

    // Block the signals before anything is attached: sigwait() then takes them, whenever they
    // come. The (never run) handler undoes the SIG_IGN a non-interactive shell gives SIGINT in
    // a background job.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &stop_signals, nullptr) != 0) fail("sigprocmask", errno);
    struct sigaction action = {};
    action.sa_handler = ignore_signal;
    if (sigaction(SIGINT, &action, nullptr) != 0 || sigaction(SIGTERM, &action, nullptr) != 0)
        fail("sigaction", errno);

    libbpf_set_print(print_libbpf);

    errno = 0;
    bpf_object *obj = bpf_object__open_file(object_path.c_str(), nullptr);
    if (obj == nullptr) {
        int err = last_error();
        fail("cannot open " + object_path, err);
    }

    // Load only what was asked for.
    std::vector<bpf_program *> progs;
    for (const auto &name : names) {
        bpf_program *prog = bpf_object__find_program_by_name(obj, name.c_str());
        if (prog == nullptr) {
            std::string known;
            bpf_program *p = nullptr;
            bpf_object__for_each_program(p, obj) {
                known += known.empty() ? "" : ", ";
                known += bpf_program__name(p);
            }
            fail("no program " + name + " in " + object_path + " (it has: " + known + ")");
        }
        progs.push_back(prog);
    }
    bpf_program *prog = nullptr;
    bpf_object__for_each_program(prog, obj) {
        bool wanted = false;
        for (const auto *p : progs) wanted = wanted || p == prog;
        bpf_program__set_autoload(prog, wanted);
    }
    if (int err = bpf_object__load(obj); err != 0)
        fail("cannot load " + object_path, err < 0 ? -err : err);

    int cgroup_fd = -1;
    std::vector<bpf_link *> links;
    for (std::size_t i = 0; i < progs.size(); i++) {
        errno = 0;
        bpf_link *link = nullptr;
        if (attaches_to_cgroup(progs[i])) {
            if (cgroup_fd < 0) cgroup_fd = open_cgroup2_root();
            link = bpf_program__attach_cgroup(progs[i], cgroup_fd);
        } else {
            link = bpf_program__attach(progs[i]);
        }
        if (link == nullptr) {
            int err = last_error();
            fail("cannot attach " + names[i], err);
        }
        links.push_back(link);
    }

    std::printf("ready\n");
    std::fflush(stdout);

    int sig = 0;
    int wait_err = sigwait(&stop_signals, &sig);

    for (auto *link : links) bpf_link__destroy(link);
    if (cgroup_fd >= 0) close(cgroup_fd);
    bpf_object__close(obj);
    if (wait_err != 0) fail("sigwait", wait_err);
    return 0;
}
