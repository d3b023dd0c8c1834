// SPDX-License-Identifier: Apache-2.0
// Whether the agent does its job, for /healthz: only the agent's own reasons count (a
// host short of ports is what it reports, not a fault of its own).
#pragma once

#include <string>
#include <vector>

#include "agent/stats.h"

namespace portwatch {

// Above this share of the records of one refresh lost, the agent is unhealthy: it no longer
// sees what it reports on. A few lost in a burst are counted, and reported, but tolerated.
constexpr double kUnhealthyLostShare = 0.01;

// The reasons, one sentence each, from two snapshots one refresh apart; none when healthy.
// (A loop that stops refreshing is the server's to notice: it has nothing to publish.)
std::vector<std::string> health_problems(const StatsSnapshot &before, const StatsSnapshot &now);

}  // namespace portwatch
