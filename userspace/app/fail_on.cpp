// SPDX-License-Identifier: Apache-2.0
#include "app/fail_on.h"

#include "model/port_model.h"

namespace portwatch {

std::uint64_t records_lost(const StatsSnapshot &stats) {
    return stats.kernel.lost_total() + stats.kernel.pending_overflow + stats.decode_errors +
           stats.output_lines_lost;
}

namespace {

std::string condition_text(FailOn condition, const RunFacts &facts) {
    switch (condition) {
        case FailOn::warning:
        case FailOn::critical: {
            WarningLevel at_least =
                condition == FailOn::warning ? WarningLevel::warning : WarningLevel::critical;
            if (facts.highest_level < at_least) return "";
            return std::string(name_in(kFailOnNames, condition)) + ": a scope reached " +
                   std::string(name_of(facts.highest_level));
        }
        case FailOn::failure:
            if (facts.failures == 0) return "";
            return "failure: " + std::to_string(facts.failures) + " allocation(s) failed";
        case FailOn::lost:
            if (facts.lost == 0) return "";
            return "lost: " + std::to_string(facts.lost) + " record(s) or line(s) lost";
    }
    return "";
}

}  // namespace

std::vector<std::string> conditions_met(const std::vector<FailOn> &chosen, const RunFacts &facts) {
    std::vector<std::string> met;
    for (FailOn condition : {FailOn::warning, FailOn::critical, FailOn::failure, FailOn::lost}) {
        bool asked = false;
        for (FailOn each : chosen) asked = asked || each == condition;
        if (!asked) continue;
        if (std::string text = condition_text(condition, facts); !text.empty())
            met.push_back(std::move(text));
    }
    return met;
}

}  // namespace portwatch
