// SPDX-License-Identifier: Apache-2.0
// How much of the host the agent sees. The BPF programs see every network namespace; their
// cgroup hooks see the processes below the cgroup they are attached to; the socket-table
// passes (the monitor's baseline and reconciliation, `snapshot`) read what the privileges
// allow.
#pragma once

#include <string>
#include <vector>

namespace portwatch {

struct Reach {
    bool every_netns = false;  // CAP_SYS_ADMIN, CAP_SYS_PTRACE: setns(), /proc/PID/ns/net
    bool every_owner = false;  // CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH: every /proc/PID/fd
    bool every_cgroup = true;  // the cgroup hooks are on the root cgroup
};

// One line each (no "portwatch: " prefix, no newline) for what is out of reach; none when
// everything is in reach.
std::vector<std::string> reach_limits(const Reach &reach);

}  // namespace portwatch
