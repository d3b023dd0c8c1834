// SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>

#include "agent/health.h"

namespace portwatch {
namespace {

// Two refreshes one second apart: `emitted` and `lost` allocate records in between.
std::vector<std::string> problems_after(std::uint64_t emitted, std::uint64_t lost) {
    StatsSnapshot before, now;
    before.uptime_s = 4;
    before.kernel.emitted[PW_RECORD_ALLOCATE][0] = 1000;
    before.kernel.lost[PW_RECORD_ALLOCATE][0] = 7;
    now.uptime_s = 5;
    now.kernel.emitted[PW_RECORD_ALLOCATE][0] = 1000 + emitted;
    now.kernel.lost[PW_RECORD_ALLOCATE][0] = 7 + lost;
    return health_problems(before, now);
}

TEST(Health, HealthyWithoutLossesOrDetachedPrograms) {
    EXPECT_TRUE(problems_after(5000, 0).empty());
}

TEST(Health, LossesUpToOnePercentOfTheIntervalAreTolerated) {
    EXPECT_TRUE(problems_after(9900, 100).empty());
}

TEST(Health, MoreLostThanThatIsAProblemWithTheFigures) {
    std::vector<std::string> problems = problems_after(9899, 101);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems[0],
              "events lost: 101 of 10000 in the last 1.0 s did not fit the ring buffer "
              "(--ringbuf-mb)");
}

TEST(Health, LossesBeforeTheIntervalDoNotCount) {
    EXPECT_TRUE(problems_after(0, 0).empty());  // 7 lost before: not now
}

TEST(Health, DetachedProgramsAreNamed) {
    StatsSnapshot before, now;
    now.detached = {"sockops@/sys/fs/cgroup", "cgroup/sock_release@/sys/fs/cgroup"};
    std::vector<std::string> problems = health_problems(before, now);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems[0],
              "programs detached by another process: sockops@/sys/fs/cgroup, "
              "cgroup/sock_release@/sys/fs/cgroup");
}

TEST(Health, UnreadableCountersAreAProblem) {
    StatsSnapshot before, now;
    now.counters_error = "cannot read the event counters: Bad file descriptor";
    std::vector<std::string> problems = health_problems(before, now);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems[0],
              "cannot read the event counters: Bad file descriptor (lost events cannot be "
              "counted)");
}

}  // namespace
}  // namespace portwatch
