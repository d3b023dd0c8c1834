// SPDX-License-Identifier: Apache-2.0
#include "system/privileges.h"

#include <sys/capability.h>

#include <cstdio>

namespace portwatch {
namespace {

bool effective(cap_t caps, cap_value_t capability) {
    cap_flag_value_t value = CAP_CLEAR;
    return caps && cap_get_flag(caps, capability, CAP_EFFECTIVE, &value) == 0 && value == CAP_SET;
}

}  // namespace

Reach current_reach() {
    cap_t caps = cap_get_proc();
    // /proc/PID/ns/net and /proc/PID/fd of a process with other credentials: the ptrace
    // access check (ptrace_may_access()); /proc/PID/fd also by its mode (0500, its owner's).
    bool ptrace = effective(caps, CAP_SYS_PTRACE);
    bool dac = effective(caps, CAP_DAC_READ_SEARCH) || effective(caps, CAP_DAC_OVERRIDE);
    Reach reach;
    reach.every_netns = effective(caps, CAP_SYS_ADMIN) && ptrace;
    reach.every_owner = ptrace && dac;
    if (caps) cap_free(caps);
    return reach;
}

void print_reach_limits(const Reach &reach) {
    for (const std::string &limit : reach_limits(reach))
        std::fprintf(stderr, "portwatch: %s\n", limit.c_str());
}

}  // namespace portwatch
