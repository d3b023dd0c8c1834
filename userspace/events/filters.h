// SPDX-License-Identifier: Apache-2.0
// Which sockets and processes the user asked to see (--pid, --uid, --port, --comm, --netns,
// --proto,
// --family): the kernel side drops the rest, and the socket-table passes apply the same.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "events/event.h"

namespace portwatch {

// Local ports low to high, both included (--port 8080 is 8080-8080).
struct LocalPortRange {
    std::uint16_t low = 0, high = 0;
    bool contains(std::uint16_t port) const { return port >= low && port <= high; }
    bool operator==(const LocalPortRange &) const = default;
};

struct Filters {
    std::vector<std::uint32_t> pids;  // any of these processes (tgid); none: every process
    bool follow_children = false;     // --children: and their descendants forked since start
    std::vector<std::uint32_t> uids;  // any of these callers' real uids; none: every user
    // any of these local ports (allocated, or asked for by a failed bind); none: every port
    std::vector<LocalPortRange> ports;
    std::optional<std::string> comm;  // exact match, at most 15 bytes (TASK_COMM_LEN - 1)
    // cgroup v2 paths ("/a/b", from the root) the task must be in, each, or below it
    std::vector<std::string> cgroups;
    // --container: prefixes of container ids; resolve_containers() finds their cgroups, of
    // which the task must be in any one or below it
    std::vector<std::string> containers;
    std::vector<std::string> container_cgroups;
    std::optional<std::uint32_t> netns;
    std::optional<Proto> proto;
    std::optional<Family> family;
};

}  // namespace portwatch
