// SPDX-License-Identifier: Apache-2.0
#include "agent/reach.h"

namespace portwatch {

std::vector<std::string> reach_limits(const Reach &reach) {
    std::vector<std::string> limits;
    if (!reach.every_cgroup)
        limits.push_back(
            "the cgroup2 mount is not the root cgroup (a cgroup namespace of its own?): TCP "
            "connects and UDP releases are seen only for the processes below it; run in the "
            "host's cgroup namespace");
    if (!reach.every_netns)
        limits.push_back(
            "no CAP_SYS_ADMIN and CAP_SYS_PTRACE: the sockets that already exist are read only in "
            "the network namespaces this process can find and enter; the others are known from "
            "their events alone");
    if (!reach.every_owner)
        limits.push_back(
            "no CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH: sockets found in the socket tables get an "
            "owner only where /proc/PID/fd is readable (this user's processes); the others are "
            "counted without one");
    return limits;
}

}  // namespace portwatch
