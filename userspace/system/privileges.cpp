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
    Reach reach{effective(caps, CAP_SYS_ADMIN), effective(caps, CAP_SYS_PTRACE)};
    if (caps) cap_free(caps);
    return reach;
}

void print_reach_limits() {
    for (const std::string &limit : reach_limits(current_reach()))
        std::fprintf(stderr, "portwatch: %s\n", limit.c_str());
}

}  // namespace portwatch
