// SPDX-License-Identifier: Apache-2.0
#include "agent/health.h"

#include <cstdio>

namespace portwatch {
namespace {

std::string join(const std::vector<std::string> &names) {
    std::string joined;
    for (const std::string &name : names) joined += (joined.empty() ? "" : ", ") + name;
    return joined;
}

}  // namespace

std::vector<std::string> health_problems(const StatsSnapshot &before, const StatsSnapshot &now) {
    std::vector<std::string> problems;
    std::uint64_t lost = now.kernel.lost_total() - before.kernel.lost_total();
    std::uint64_t emitted = now.kernel.emitted_total() - before.kernel.emitted_total();
    if (lost > 0 && double(lost) > kUnhealthyLostShare * double(lost + emitted)) {
        char interval[32];
        std::snprintf(interval, sizeof(interval), "%.1f", now.uptime_s - before.uptime_s);
        problems.push_back("events lost: " + std::to_string(lost) + " of " +
                           std::to_string(lost + emitted) + " in the last " + interval +
                           " s did not fit the ring buffer (--ringbuf-mb)");
    }
    if (!now.counters_error.empty())
        problems.push_back(now.counters_error + " (lost events cannot be counted)");
    if (!now.detached.empty())
        problems.push_back("programs detached by another process: " + join(now.detached));
    return problems;
}

}  // namespace portwatch
