// SPDX-License-Identifier: Apache-2.0
// The Prometheus view of the monitor: counters fed by events, and the text exposition
// (format 0.0.4) of those counters, the current usage and the agent's own stats.
// Every metric and label is listed in docs/metrics.md; label sets are bounded by
// design: enums, one series per active netns and scope kind, and the top N
// destination scopes and processes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>

#include "events/event.h"
#include "model/port_model.h"
#include "agent/stats.h"

namespace portwatch {

class EventCounters {
  public:
    void count(const Event &event);
    void count(const Warning &warning);

    // (how, proto, family) -> allocations that succeeded
    std::map<std::tuple<How, Proto, Family>, std::uint64_t> allocations;
    // (how, proto, errno) -> allocations that failed
    std::map<std::tuple<How, Proto, int>, std::uint64_t> failures;
    // (proto, reason) -> ports that went back
    std::map<std::pair<Proto, ReleaseReason>, std::uint64_t> releases;
    std::array<std::uint64_t, 3> warnings{};  // by WarningLevel: changes to that level
};

struct MetricsInput {
    std::string version;
    std::string kernel_release;
    const Report *usage = nullptr;  // PortModel::current()
    const StatsSnapshot *stats = nullptr;
    const EventCounters *counters = nullptr;
    std::size_t top_n = 10;  // destination scopes and processes exported
    std::string hook_set;    // fexit or tracepoint
};

std::string render_prometheus(const MetricsInput &input);

}  // namespace portwatch
