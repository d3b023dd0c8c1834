// SPDX-License-Identifier: Apache-2.0
#include "base/schedule.h"

#include <gtest/gtest.h>

namespace portwatch {
namespace {

TEST(Schedule, OnTimeMovesOnePeriod) {
    EXPECT_EQ(next_deadline(10, 10, 10), 20);
    EXPECT_EQ(next_deadline(10, 10, 19), 20);
}

TEST(Schedule, AStallIsOneLineNotABurst) {
    // stopped 8 s with a 2 s interval: the next deadline is after now, on the same grid
    EXPECT_EQ(next_deadline(10, 2, 18), 20);
    EXPECT_EQ(next_deadline(10, 2, 19), 20);
    EXPECT_EQ(next_deadline(10, 10, 255), 260);
}

TEST(Schedule, NotDueYetOrNoIntervalChangesNothing) {
    EXPECT_EQ(next_deadline(10, 10, 5), 10);
    EXPECT_EQ(next_deadline(10, 0, 50), 10);
}

}  // namespace
}  // namespace portwatch
