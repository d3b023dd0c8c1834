// SPDX-License-Identifier: Apache-2.0
#include <vector>

#include <gtest/gtest.h>

#include "agent/stats.h"

namespace portwatch {
namespace {

TEST(Stats, SumOverCpus) {
    std::vector<pw_counters> cpus(3);
    for (auto &cpu : cpus) cpu = pw_counters{};
    cpus[0].emitted[PW_RECORD_ALLOCATE][PW_HOW_BIND] = 1;
    cpus[1].emitted[PW_RECORD_ALLOCATE][PW_HOW_BIND] = 10;
    cpus[2].emitted[PW_RECORD_ALLOCATE][PW_HOW_BIND] = 100;
    cpus[0].emitted[PW_RECORD_RELEASE][PW_HOW_SENDTO_AUTOBIND] = 4;
    cpus[2].emitted[PW_RECORD_RELEASE][PW_HOW_SENDTO_AUTOBIND] = 5;
    cpus[1].lost[PW_RECORD_ALLOCATE_FAILED][PW_HOW_CONNECT_AUTOBIND] = 7;
    cpus[2].lost[PW_RECORD_ALLOCATE][PW_HOW_LISTEN_AUTOBIND] = 2;
    cpus[0].lost[PW_RECORD_ALLOCATE][PW_HOW_LISTEN_AUTOBIND] = 3;
    cpus[0].untracked = 1;
    cpus[1].untracked = 2;
    cpus[2].pending_overflow = 9;
    cpus[1].pending_overflow = 1;

    CounterTotals totals = CounterTotals::sum(cpus);
    EXPECT_EQ(totals.emitted[PW_RECORD_ALLOCATE][PW_HOW_BIND], 111u);
    EXPECT_EQ(totals.emitted[PW_RECORD_RELEASE][PW_HOW_SENDTO_AUTOBIND], 9u);
    EXPECT_EQ(totals.lost[PW_RECORD_ALLOCATE_FAILED][PW_HOW_CONNECT_AUTOBIND], 7u);
    EXPECT_EQ(totals.lost[PW_RECORD_ALLOCATE][PW_HOW_LISTEN_AUTOBIND], 5u);
    EXPECT_EQ(totals.emitted[PW_RECORD_ALLOCATE_FAILED][PW_HOW_BIND], 0u);
    EXPECT_EQ(totals.untracked, 3u);
    EXPECT_EQ(totals.pending_overflow, 10u);
    EXPECT_EQ(totals.lost_total(), 12u);
}

TEST(Stats, EveryCellIsSummedIndependently) {
    std::vector<pw_counters> cpus(2);
    for (std::size_t c = 0; c < cpus.size(); c++) {
        cpus[c] = pw_counters{};
        for (std::size_t t = 0; t < PW_RECORD_TYPE_COUNT; t++)
            for (std::size_t h = 0; h < PW_HOW_COUNT; h++) {
                cpus[c].emitted[t][h] = (c + 1) * (t * PW_HOW_COUNT + h);
                cpus[c].lost[t][h] = c + 1;
            }
    }
    CounterTotals totals = CounterTotals::sum(cpus);
    for (std::size_t t = 0; t < PW_RECORD_TYPE_COUNT; t++)
        for (std::size_t h = 0; h < PW_HOW_COUNT; h++) {
            EXPECT_EQ(totals.emitted[t][h], 3 * (t * PW_HOW_COUNT + h)) << t << "," << h;
            EXPECT_EQ(totals.lost[t][h], 3u) << t << "," << h;
        }
    EXPECT_EQ(totals.lost_total(), 3u * PW_RECORD_TYPE_COUNT * PW_HOW_COUNT);
}

TEST(Stats, NoCpusIsAllZero) {
    CounterTotals totals = CounterTotals::sum({});
    EXPECT_EQ(totals.lost_total(), 0u);
    EXPECT_EQ(totals.untracked, 0u);
    EXPECT_EQ(totals.emitted[PW_RECORD_ALLOCATE][PW_HOW_BIND], 0u);
}

}  // namespace
}  // namespace portwatch
