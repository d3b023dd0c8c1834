// SPDX-License-Identifier: Apache-2.0
// Per-process accounting: the ports each process holds, its allocations and failures, and
// the processes that hold most of a scope.
#include "model/port_model.h"

#include <algorithm>

namespace portwatch {

std::size_t ProcessUsage::held_total() const {
    std::size_t total = 0;
    for (const auto &[kind, count] : held) total += count;
    return total;
}

ProcessUsage &PortModel::process(const TaskInfo &task, std::uint32_t netns) {
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

void PortModel::forget_idle_processes(std::uint64_t now_ns) {
    std::erase_if(processes_, [&](const auto &entry) {
        const ProcessUsage &usage = entry.second;
        return usage.held_total() == 0 && usage.last_active_ns + settings_.process_idle_ns < now_ns;
    });
}

// SO_REUSEPORT sockets share a port: a process holds it once, as the kernel counts it.
void PortModel::count_process_port(const HeldSocket &held, int delta) {
    ProcessPort key{held.sock.netns, held.sock.proto, held.pid, held.sock.local_port, held.how};
    std::uint32_t &sockets = process_ports_[key];
    bool was_held = sockets > 0;
    sockets = delta > 0 ? sockets + 1 : sockets - std::min<std::uint32_t>(sockets, 1);
    bool is_held = sockets > 0;
    if (!is_held) process_ports_.erase(key);
    auto owner = processes_.find(held.pid);
    if (was_held == is_held || owner == processes_.end()) return;
    std::size_t &ports = owner->second.held[{held.sock.proto, held.how}];
    ports = is_held ? ports + 1 : ports - std::min<std::size_t>(ports, 1);
}

// A process that exited after handing its socket on (nginx's daemonizing parent, an fd
// passed over a Unix socket) holds nothing: the tables name who holds it now.
void PortModel::move_owner(HeldSocket &held, const TaskInfo &owner) {
    forget(held);
    held.pid = owner.pid;
    ScopeState &state = scope_state(held.scope(), held.sock.proto);
    state.held++;
    state.held_by_pid[held.pid]++;
    process(owner, held.sock.netns);
    count_process_port(held, +1);
}

bool PortModel::attribute(ReleaseEvent &release) const {
    auto found = sockets_.find(release.sock.cookie);
    if (found == sockets_.end()) return release.owner_known;
    const HeldSocket &held = found->second;
    if (!release.owner_known) {
        release.owner_known = true;
        release.how = held.how;
        release.held_ns = release.boot_ns > held.since_ns ? release.boot_ns - held.since_ns : 0;
    }
    if (release.owner.pid != held.pid) {
        auto owner = processes_.find(held.pid);
        release.owner = TaskInfo{};
        release.owner.pid = release.owner.tid = held.pid;
        if (owner != processes_.end()) {
            release.owner.uid = owner->second.uid;
            release.owner.comm = owner->second.comm;
            release.owner.cgroup_id = owner->second.cgroup_id;
            release.owner.cgroup_path = owner->second.cgroup_path;
        }
    }
    return true;
}

// The bind and UDP scopes fill with every port of the range their protocol holds, whoever
// allocated it: their holders are the processes with the most such ports.
std::unordered_map<std::uint32_t, std::size_t> PortModel::range_holders(const ScopeKey &key) const {
    std::unordered_map<std::uint32_t, std::size_t> ports_by_pid;
    auto ns = netns_.find(key.netns);
    if (ns == netns_.end()) return ports_by_pid;
    Proto proto = key.kind == ScopeKind::udp ? Proto::udp : Proto::tcp;
    const ProcessPort *previous = nullptr;
    for (auto it = process_ports_.lower_bound(ProcessPort{key.netns, proto});
         it != process_ports_.end() && it->first.netns == key.netns && it->first.proto == proto;
         ++it) {
        const ProcessPort &held = it->first;
        bool counted = previous && previous->pid == held.pid && previous->port == held.port;
        if (!counted && ns->second.config.is_ephemeral(held.port)) ports_by_pid[held.pid]++;
        previous = &held;
    }
    return ports_by_pid;
}

std::vector<TopProcess> PortModel::top_processes(
    const std::unordered_map<std::uint32_t, std::size_t> &ports_by_pid) const {
    std::vector<TopProcess> top;
    for (const auto &[pid, ports] : ports_by_pid) {
        auto owner = processes_.find(pid);
        bool known = owner != processes_.end();
        top.push_back({pid, known ? owner->second.comm : std::string(), ports,
                       known ? owner->second.cgroup_path : CgroupPath()});
    }
    std::sort(top.begin(), top.end(), [](const TopProcess &a, const TopProcess &b) {
        return a.ports != b.ports ? a.ports > b.ports : a.pid < b.pid;
    });
    if (top.size() > settings_.top_n) top.resize(settings_.top_n);
    return top;
}

}  // namespace portwatch
