// SPDX-License-Identifier: Apache-2.0
#include "app/fail_on.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace portwatch {
namespace {

TEST(FailOn, NothingChosenNeverFails) {
    RunFacts facts{WarningLevel::critical, 5, 7};
    EXPECT_TRUE(conditions_met({}, facts).empty());
}

TEST(FailOn, QuietRunMeetsNoCondition) {
    EXPECT_TRUE(conditions_met({FailOn::warning, FailOn::critical, FailOn::failure, FailOn::lost},
                               RunFacts{})
                    .empty());
}

TEST(FailOn, WarningIsMetByWarningAndCritical) {
    EXPECT_EQ(conditions_met({FailOn::warning}, RunFacts{WarningLevel::warning, 0, 0}),
              std::vector<std::string>{"warning: a scope reached warning"});
    EXPECT_EQ(conditions_met({FailOn::warning}, RunFacts{WarningLevel::critical, 0, 0}),
              std::vector<std::string>{"warning: a scope reached critical"});
}

TEST(FailOn, CriticalIsNotMetByWarning) {
    EXPECT_TRUE(conditions_met({FailOn::critical}, RunFacts{WarningLevel::warning, 0, 0}).empty());
    EXPECT_EQ(conditions_met({FailOn::critical}, RunFacts{WarningLevel::critical, 0, 0}).size(),
              1u);
}

TEST(FailOn, FailureAndLostCountWhatHappened) {
    RunFacts facts{WarningLevel::ok, 2, 3};
    EXPECT_EQ(conditions_met({FailOn::lost, FailOn::failure}, facts),
              (std::vector<std::string>{"failure: 2 allocation(s) failed",
                                        "lost: 3 record(s) or line(s) lost"}));
}

TEST(FailOn, RecordsLostAddsEveryDrop) {
    StatsSnapshot stats;
    stats.kernel.lost[0][0] = 1;
    stats.kernel.pending_overflow = 2;
    stats.decode_errors = 4;
    stats.output_lines_lost = 8;
    stats.kernel.untracked = 100;  // seen allocations whose release cannot be: not lost
    EXPECT_EQ(records_lost(stats), 15u);
}

}  // namespace
}  // namespace portwatch
