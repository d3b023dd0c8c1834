// SPDX-License-Identifier: Apache-2.0
// The cgroup `monitor -- CMD` runs its command in: created beside portwatch's own cgroup (v2),
// removed at the end unless a process that outlived the command is still in it.
#pragma once

#include <cstddef>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>

#include "base/result.h"

namespace portwatch {

// The cgroup v2 path ("/a/b", from the root of the caller's cgroup namespace) in
// /proc/PID/cgroup text: its "0::" line.
std::optional<std::string> cgroup_v2_path_in(std::istream &proc_cgroup);

// The cgroup v2 path of a process (0: this one); std::nullopt if it is gone or has none.
std::optional<std::string> cgroup_v2_path_of(pid_t pid);

// Whether the cgroup at `path` is `ancestor` or below it.
bool cgroup_is_within(std::string_view path, std::string_view ancestor);

// The path of a cgroup named `name` beside the one at `own` ("/" has none: below it, then).
std::string sibling_cgroup_path(std::string_view own, std::string_view name);

struct CommandCgroup {
    std::string mount;  // where cgroup2 is mounted
    std::string path;   // from the cgroup2 root, "/a/portwatch-cmd-PID"
    std::string directory() const { return mount + path; }
};

// Creates portwatch-cmd-<our pid> beside our own cgroup. Fails with one line naming what is
// missing (no cgroup2 mount, no cgroup v2 line for us) or what the kernel refused.
Result<CommandCgroup> create_command_cgroup();

// Removes the cgroup. When processes are still in it, leaves it (and them) and returns how
// many there are; 0 when it is gone. Fails when it can be neither removed nor read.
Result<std::size_t> remove_command_cgroup(const CommandCgroup &cgroup);

}  // namespace portwatch
