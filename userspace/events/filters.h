// SPDX-License-Identifier: Apache-2.0
// Which sockets and processes the user asked to see (--pid, --comm, --netns, --proto,
// --family): the kernel side drops the rest, and the socket-table passes apply the same.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "events/event.h"

namespace portwatch {

struct Filters {
    std::vector<std::uint32_t> pids;  // any of these processes (tgid); none: every process
    std::optional<std::string> comm;  // exact match, at most 15 bytes (TASK_COMM_LEN - 1)
    // cgroup v2 paths ("/a/b", from the root) the task must be in, each, or below it
    std::vector<std::string> cgroups;
    std::optional<std::uint32_t> netns;
    std::optional<Proto> proto;
    std::optional<Family> family;
};

}  // namespace portwatch
