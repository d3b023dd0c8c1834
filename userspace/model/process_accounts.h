// SPDX-License-Identifier: Apache-2.0
// Per-process accounting: each process's ports, allocations and failures, and which
// processes hold most of a scope. PortModel's own: it says which socket was held or
// forgotten, and by whom.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <absl/container/btree_map.h>

#include "events/event.h"
#include "model/held_socket.h"
#include "model/netns_ports.h"

namespace portwatch {

struct TopProcess {
    std::uint32_t pid = 0;
    std::string comm;
    std::size_t ports = 0;
    CgroupPath cgroup_path;  // "" when unknown
};

struct ProcessUsage {
    std::uint32_t pid = 0;
    std::string comm;
    std::uint64_t cgroup_id = 0;
    CgroupPath cgroup_path;  // as TaskInfo's: "" when unknown
    std::uint32_t uid = 0;
    std::uint32_t netns = 0;
    std::map<std::pair<Proto, How>, std::size_t> held;  // live ports by protocol and kind
    std::uint64_t allocations = 0;                      // in the report interval
    std::uint64_t failures = 0;                         // in the report interval
    double allocation_rate = 0;        // allocations per second in the report interval
    std::uint64_t last_active_ns = 0;  // its last allocation, failure or release seen

    std::size_t held_total() const;
};

class ProcessAccounts {
  public:
    using ByPid = std::map<std::uint32_t, ProcessUsage>;

    // The process's usage, its identity updated from `task`; made if new.
    ProcessUsage &note(const TaskInfo &task, std::uint32_t netns);
    ProcessUsage *find(std::uint32_t pid);
    const ProcessUsage *find(std::uint32_t pid) const;
    const ByPid &all() const { return processes_; }

    // One socket of `held.pid` on its port more (delta > 0) or less.
    void count_port(const HeldSocket &held, int delta);

    // The processes holding the most ports of the netns's range (is_ephemeral()) for proto.
    std::unordered_map<std::uint32_t, std::size_t> range_holders(
        std::uint32_t netns, Proto proto, const NetnsPortConfig &config) const;
    // pid -> ports as TopProcess, most ports first (ties: lowest pid), at most `top_n`.
    std::vector<TopProcess> top(const std::unordered_map<std::uint32_t, std::size_t> &ports_by_pid,
                                std::size_t top_n) const;

    // A new report interval: counts restart, and who holds nothing is forgotten.
    void end_interval();
    // Forgets who holds nothing and did nothing since `idle_ns` before `now_ns`.
    void forget_idle(std::uint64_t now_ns, std::uint64_t idle_ns);

  private:
    ByPid processes_;
    // sockets on each port a process holds
    absl::btree_map<ProcessPort, std::uint32_t> process_ports_;
};

}  // namespace portwatch
