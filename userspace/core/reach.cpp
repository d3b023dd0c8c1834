#include "core/reach.h"

namespace portwatch {

std::vector<std::string> reach_limits(const Reach &reach) {
    std::vector<std::string> limits;
    if (!reach.other_netns)
        limits.push_back(
            "no CAP_SYS_ADMIN and CAP_SYS_PTRACE: the sockets that already exist are read only in "
            "the network namespaces this process can find and enter; the others are known from "
            "their events alone");
    if (!reach.all_owners)
        limits.push_back(
            "no CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH: sockets found in the socket tables get an "
            "owner only where /proc/PID/fd is readable (this user's processes); the others are "
            "counted without one");
    return limits;
}

}  // namespace portwatch
