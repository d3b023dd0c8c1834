// SPDX-License-Identifier: Apache-2.0
// Which sockets and processes the user asked to see (--pid, --comm, --netns, --proto,
// --family): the kernel side drops the rest, and the socket-table passes apply the same.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "events/event.h"

namespace portwatch {

struct Filters {
    std::optional<std::uint32_t> pid;
    std::optional<std::string> comm;  // exact match, at most 15 bytes (TASK_COMM_LEN - 1)
    std::optional<std::string> cgroup;  // cgroup v2 path ("/a/b", from its root) and descendants
    std::optional<std::uint32_t> netns;
    std::optional<Proto> proto;
    std::optional<Family> family;
};

}  // namespace portwatch
