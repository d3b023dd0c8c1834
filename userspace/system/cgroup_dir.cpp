// SPDX-License-Identifier: Apache-2.0
#include "system/cgroup_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "system/mounts.h"

namespace portwatch {

std::optional<std::string> cgroup_v2_path_in(std::istream &proc_cgroup) {
    std::string line;
    while (std::getline(proc_cgroup, line))
        if (line.starts_with("0::")) return line.substr(3);
    return std::nullopt;
}

std::optional<std::string> cgroup_v2_path_of(pid_t pid) {
    std::ifstream file(pid == 0 ? std::string("/proc/self/cgroup")
                                : "/proc/" + std::to_string(pid) + "/cgroup");
    return file ? cgroup_v2_path_in(file) : std::nullopt;
}

bool cgroup_is_within(std::string_view path, std::string_view ancestor) {
    if (ancestor == "/" || path == ancestor) return true;
    return path.starts_with(ancestor) && path.size() > ancestor.size() &&
           path[ancestor.size()] == '/';
}

std::string sibling_cgroup_path(std::string_view own, std::string_view name) {
    std::string_view parent = own.substr(0, own.rfind('/'));
    return std::string(parent) + "/" + std::string(name);
}

Result<CommandCgroup> create_command_cgroup() {
    std::ifstream proc_mounts("/proc/mounts");
    std::optional<std::string> mount = find_cgroup2_mount(proc_mounts);
    if (!mount) return Failure{"no cgroup v2 file system is mounted (no cgroup2 in /proc/mounts)"};
    std::optional<std::string> own = cgroup_v2_path_of(0);
    if (!own) return Failure{"no cgroup v2 line (0::) in /proc/self/cgroup"};
    CommandCgroup cgroup{*mount,
                         sibling_cgroup_path(*own, "portwatch-cmd-" + std::to_string(getpid()))};
    if (mkdir(cgroup.directory().c_str(), 0755) != 0)
        return Failure{"cannot create the cgroup " + cgroup.directory() + ": " +
                       std::strerror(errno)};
    return cgroup;
}

namespace {

std::size_t processes_in(const CommandCgroup &cgroup) {
    std::ifstream procs(cgroup.directory() + "/cgroup.procs");
    std::size_t count = 0;
    for (std::string line; std::getline(procs, line);) count += !line.empty();
    return count;
}

}  // namespace

// A command's last process leaves the cgroup in do_exit() (cgroup_exit()), but the cgroup
// stays busy until its css_set is released: rmdir() may meet EBUSY for a moment after the
// command was reaped, with cgroup.procs already empty.
Result<std::size_t> remove_command_cgroup(const CommandCgroup &cgroup) {
    for (int attempt = 0; attempt < 50; ++attempt) {
        if (rmdir(cgroup.directory().c_str()) == 0 || errno == ENOENT) return std::size_t{0};
        if (errno != EBUSY)
            return Failure{"cannot remove the cgroup " + cgroup.directory() + ": " +
                           std::strerror(errno)};
        if (std::size_t left = processes_in(cgroup)) return left;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return Failure{"cannot remove the cgroup " + cgroup.directory() + ": " + std::strerror(EBUSY)};
}

}  // namespace portwatch
