// SPDX-License-Identifier: Apache-2.0
// What the `ready` line says once the programs are attached: the agent, the kernel, the hooks
// and what the agent can see.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agent/reach.h"

namespace portwatch {

struct ReadyInfo {
    std::int64_t realtime_ns = 0;
    std::string version;
    std::string revision;  // git's, at build time
    std::string kernel_release;
    std::vector<std::string> hooks;
    std::string hook_set;         // "fexit" or "tracepoint"
    std::string hook_set_reason;  // why that set
    std::uint32_t agent_pid = 0;
    std::string metrics_address;  // where /metrics is served; empty without --metrics-listen
    std::string events = "all";   // which event lines are written (--events)
    Reach reach;
};

}  // namespace portwatch
