// How much of the host the socket-table passes (the monitor's baseline and reconciliation,
// and `snapshot`) can read with the privileges this process has. The BPF programs see every
// namespace either way; what is out of reach is only the sockets that exist already.
#pragma once

#include <string>
#include <vector>

namespace portwatch {

struct Reach {
    bool other_netns = false;  // CAP_SYS_ADMIN, CAP_SYS_PTRACE: setns(), /proc/PID/ns/net
    bool all_owners = false;   // CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH: every /proc/PID/fd
};

// One line each (no "portwatch: " prefix, no newline) for what is out of reach; none when
// everything is in reach.
std::vector<std::string> reach_limits(const Reach &reach);

}  // namespace portwatch
