// SPDX-License-Identifier: Apache-2.0
#include "model/process_accounts.h"

#include <algorithm>
#include <iterator>

namespace portwatch {

std::size_t ProcessUsage::held_total() const {
    std::size_t total = 0;
    for (const auto &[kind, count] : held) total += count;
    return total;
}

ProcessUsage &ProcessAccounts::note(const TaskInfo &task, std::uint32_t netns) {
    ProcessUsage &usage = processes_[task.pid];
    usage.pid = task.pid;
    usage.comm = task.comm;
    usage.uid = task.uid;
    // A socket-table owner may know no cgroup: it does not unlearn what an event said.
    if (task.cgroup_id) usage.cgroup_id = task.cgroup_id;
    if (!task.cgroup_path.empty()) usage.cgroup_path = task.cgroup_path;
    usage.netns = netns;
    return usage;
}

ProcessUsage *ProcessAccounts::find(std::uint32_t pid) {
    auto found = processes_.find(pid);
    return found == processes_.end() ? nullptr : &found->second;
}

const ProcessUsage *ProcessAccounts::find(std::uint32_t pid) const {
    auto found = processes_.find(pid);
    return found == processes_.end() ? nullptr : &found->second;
}

// SO_REUSEPORT sockets share a port: a process holds it once, as the kernel counts it.
void ProcessAccounts::count_port(const HeldSocket &held, int delta) {
    ProcessPort key{held.sock.netns, held.sock.proto, held.pid, held.sock.local_port, held.how};
    std::uint32_t &sockets = process_ports_[key];
    bool was_held = sockets > 0;
    sockets = delta > 0 ? sockets + 1 : sockets - std::min<std::uint32_t>(sockets, 1);
    bool is_held = sockets > 0;
    if (!is_held) process_ports_.erase(key);
    ProcessUsage *owner = find(held.pid);
    if (was_held == is_held || !owner) return;
    std::size_t &ports = owner->held[{held.sock.proto, held.how}];
    ports = is_held ? ports + 1 : ports - std::min<std::size_t>(ports, 1);
}

// The bind and UDP scopes fill with every port of the range their protocol holds, whoever
// allocated it: their holders are the processes with the most such ports.
std::unordered_map<std::uint32_t, std::size_t> ProcessAccounts::range_holders(
    std::uint32_t netns, Proto proto, const NetnsPortConfig &config) const {
    std::unordered_map<std::uint32_t, std::size_t> ports_by_pid;
    const ProcessPort *previous = nullptr;
    for (auto it = process_ports_.lower_bound(ProcessPort{netns, proto});
         it != process_ports_.end() && it->first.netns == netns && it->first.proto == proto; ++it) {
        const ProcessPort &held = it->first;
        bool counted = previous && previous->pid == held.pid && previous->port == held.port;
        if (!counted && config.is_ephemeral(held.port)) ports_by_pid[held.pid]++;
        previous = &held;
    }
    return ports_by_pid;
}

std::vector<TopProcess> ProcessAccounts::top(
    const std::unordered_map<std::uint32_t, std::size_t> &ports_by_pid, std::size_t top_n) const {
    std::vector<TopProcess> top;
    for (const auto &[pid, ports] : ports_by_pid) {
        const ProcessUsage *owner = find(pid);
        top.push_back({pid, owner ? owner->comm : std::string(), ports,
                       owner ? owner->cgroup_path : CgroupPath()});
    }
    std::sort(top.begin(), top.end(), [](const TopProcess &a, const TopProcess &b) {
        return a.ports != b.ports ? a.ports > b.ports : a.pid < b.pid;
    });
    if (top.size() > top_n) top.resize(top_n);
    return top;
}

void ProcessAccounts::end_interval() {
    for (auto it = processes_.begin(); it != processes_.end();) {
        ProcessUsage &usage = it->second;
        usage.allocations = usage.failures = 0;
        it = usage.held_total() ? std::next(it) : processes_.erase(it);
    }
}

void ProcessAccounts::forget_idle(std::uint64_t now_ns, std::uint64_t idle_ns) {
    std::erase_if(processes_, [&](const auto &entry) {
        const ProcessUsage &usage = entry.second;
        return usage.held_total() == 0 && usage.last_active_ns + idle_ns < now_ns;
    });
}

}  // namespace portwatch
