// SPDX-License-Identifier: Apache-2.0
// Per-process accounting as the model's sockets see it: who holds a socket now, and the
// processes that hold most of a scope. The accounts themselves: process_accounts.cpp.
#include "model/port_model.h"

namespace portwatch {

// A process that exited after handing its socket on (nginx's daemonizing parent, an fd
// passed over a Unix socket) holds nothing: the tables name who holds it now.
void PortModel::move_owner(HeldSocket &held, const TaskInfo &owner) {
    forget(held);
    held.pid = owner.pid;
    ScopeState &state = scope_state(held.scope(), held.sock.proto);
    state.held++;
    state.held_by_pid[held.pid]++;
    processes_.note(owner, held.sock.netns);
    processes_.count_port(held, +1);
    nat_clients_.add(held);
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
        const ProcessUsage *owner = processes_.find(held.pid);
        release.owner = TaskInfo{};
        release.owner.pid = release.owner.tid = held.pid;
        if (owner) {
            release.owner.uid = owner->uid;
            release.owner.comm = owner->comm;
            release.owner.cgroup_id = owner->cgroup_id;
            release.owner.cgroup_path = owner->cgroup_path;
        }
    }
    return true;
}

// A destination scope's holders are its own sockets' owners (a NAT scope's: its clients'); the bind and UDP scopes'
// are the processes holding most ports of the range (ProcessAccounts::range_holders()).
std::vector<TopProcess> PortModel::top_processes(const ScopeKey &key,
                                                 const ScopeState &state) const {
    if (per_destination(key.kind)) return processes_.top(state.held_by_pid, settings_.top_n);
    auto ns = netns_.find(key.netns);
    if (ns == netns_.end()) return {};
    Proto proto = key.kind == ScopeKind::udp ? Proto::udp : Proto::tcp;
    return processes_.top(processes_.range_holders(key.netns, proto, ns->second.config),
                          settings_.top_n);
}

}  // namespace portwatch
