// SPDX-License-Identifier: Apache-2.0
// --fail-on: what makes a run exit 3 once its final report is written, so that a CI step
// fails on exhaustion, failed allocations or lost records. Pure: the loop gathers the facts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agent/stats.h"
#include "base/enum_names.h"
#include "model/scope_key.h"

namespace portwatch {

enum class FailOn { warning, critical, failure, lost };
inline constexpr EnumName<FailOn> kFailOnNames[] = {{FailOn::warning, "warning"},
                                                    {FailOn::critical, "critical"},
                                                    {FailOn::failure, "failure"},
                                                    {FailOn::lost, "lost"}};

// What happened during a run, as far as --fail-on asks.
struct RunFacts {
    WarningLevel highest_level = WarningLevel::ok;  // of any scope's warning line
    std::uint64_t failures = 0;                     // allocate_failed events
    std::uint64_t lost = 0;                         // see records_lost()
};

// Records and lines the run could not see or write: lost in the ring buffer, calls in flight
// the kernel side could not remember, records that did not decode, lines the output did not
// take. (Not `untracked`: those allocations were seen, only their releases cannot be.)
std::uint64_t records_lost(const StatsSnapshot &stats);

// The chosen conditions that happened, each as a few words ("critical: a scope reached
// critical"); empty when none did.
std::vector<std::string> conditions_met(const std::vector<FailOn> &chosen, const RunFacts &facts);

}  // namespace portwatch
