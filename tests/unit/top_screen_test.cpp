// SPDX-License-Identifier: Apache-2.0
// top's screen from synthetic usage: sections in order, fullest scope first, newest
// failure first, and never more rows or columns than the terminal has.
#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <vector>

#include "sample_events.h"
#include "output/top_screen.h"

namespace portwatch {
namespace {

using testing::failed_bind;

ScopeUsage bind_scope(std::uint32_t netns, std::size_t in_use) {
    ScopeUsage usage;
    usage.key.kind = ScopeKind::bind;
    usage.key.netns = netns;
    usage.in_use = in_use;
    usage.capacity = 100;
    usage.utilization = double(in_use) / 100;
    usage.level = in_use >= 95 ? WarningLevel::critical : WarningLevel::ok;
    return usage;
}

ProcessUsage process(std::uint32_t pid, std::string comm, std::size_t tcp, std::size_t udp) {
    ProcessUsage usage;
    usage.pid = pid;
    usage.comm = std::move(comm);
    usage.netns = 7;
    usage.held[{Proto::tcp, How::connect_autobind}] = tcp;
    usage.held[{Proto::udp, How::sendto_autobind}] = udp;
    return usage;
}

class TopScreen : public ::testing::Test {
  protected:
    std::vector<ScreenLine> render(std::size_t rows, std::size_t cols = 200) {
        TopInput input{&report, &stats, &failures, testing::time_base(), testing::kRealtimeNs};
        return render_top(input, rows, cols);
    }
    std::vector<std::string> texts(std::size_t rows, std::size_t cols = 200) {
        std::vector<std::string> out;
        for (const ScreenLine &line : render(rows, cols)) out.push_back(line.text);
        return out;
    }
    int index_of(const std::vector<std::string> &lines, const std::string &part) {
        for (std::size_t i = 0; i < lines.size(); ++i)
            if (lines[i].find(part) != std::string::npos) return int(i);
        return -1;
    }

    Report report;
    StatsSnapshot stats;
    RecentFailures failures;
};

TEST_F(TopScreen, AScopeAtWarningSaysItsTopCause) {
    ScopeUsage full = bind_scope(7, 96);
    Cause cause;
    cause.kind = CauseKind::bind_before_connect;
    cause.share = 0.9;
    full.causes = {cause};
    report.netns.push_back({7, {}, {full, bind_scope(7, 10)}, {}});
    auto lines = texts(40);
    int scopes = index_of(lines, "SCOPES CLOSEST TO EXHAUSTION");
    ASSERT_GT(scopes, 0);
    EXPECT_NE(lines[scopes + 2].find(" bind  why: bind_before_connect 90%"), std::string::npos)
        << lines[scopes + 2];
    EXPECT_EQ(lines[scopes + 3].find("why:"), std::string::npos) << lines[scopes + 3];
}

TEST_F(TopScreen, SectionsInOrderWithTheFullestScopeFirst) {
    report.netns.push_back({7, {}, {bind_scope(7, 10), bind_scope(7, 96)}, {}});
    report.netns.push_back({8, {}, {bind_scope(8, 50)}, {}});
    report.processes.push_back(process(42, "nginx", 3, 1));
    report.processes.back().cgroup_path = "/docker/" + std::string(64, 'b');
    stats.tracked_sockets = 4;
    auto lines = texts(40);
    EXPECT_EQ(lines[0].rfind("portwatch top  10:00:00 UTC  namespaces 2  sockets 4", 0), 0u)
        << lines[0];
    int scopes = index_of(lines, "SCOPES CLOSEST TO EXHAUSTION");
    int processes = index_of(lines, "PROCESSES HOLDING MOST PORTS");
    int recent = index_of(lines, "RECENT FAILURES");
    ASSERT_TRUE(scopes > 0 && scopes < processes && processes < recent);
    EXPECT_EQ(lines[scopes + 2].rfind("critical  96.0%       96      100", 0), 0u)
        << lines[scopes + 2];
    EXPECT_NE(lines[scopes + 3].find(" 8  "), std::string::npos) << lines[scopes + 3];
    EXPECT_EQ(lines[processes + 2].rfind("42       nginx            7                4      3      "
                                         "1      0.0      0  docker bbbbbbbbbbbb",
                                         0),
              0u)
        << lines[processes + 2];
    EXPECT_EQ(lines[recent + 2], "  none");
}

TEST_F(TopScreen, StylesFollowTheLevel) {
    report.netns.push_back({7, {}, {bind_scope(7, 96), bind_scope(7, 10)}, {}});
    auto lines = render(40);
    EXPECT_EQ(lines[0].style, ScreenLine::Style::title);
    EXPECT_EQ(lines[4].style, ScreenLine::Style::critical) << lines[4].text;
    EXPECT_EQ(lines[5].style, ScreenLine::Style::normal) << lines[5].text;
}

TEST_F(TopScreen, NewestFailureFirstAndOnlyTheLastOnesKept) {
    RecentFailures recent(3);
    for (int i = 0; i < 5; ++i) {
        AllocateEvent failure = failed_bind(EAGAIN);
        failure.task.pid = 100 + i;
        recent.add(failure);
    }
    ASSERT_EQ(recent.newest_first().size(), 3u);
    EXPECT_EQ(recent.newest_first().front().task.pid, 104u);
    EXPECT_EQ(recent.newest_first().back().task.pid, 102u);
    failures = recent;
    auto lines = texts(40);
    int first = index_of(lines, "RECENT FAILURES") + 2;
    EXPECT_EQ(
        lines[first].rfind("10:00:00 104      dnsd             EAGAIN         bind_ephemeral", 0),
        0u)
        << lines[first];
}

TEST_F(TopScreen, ASmallTerminalGetsEverySectionAndACountOfWhatIsHidden) {
    std::vector<ScopeUsage> scopes;
    for (std::size_t i = 0; i < 30; ++i) scopes.push_back(bind_scope(7, i));
    report.netns.push_back({7, {}, scopes, {}});
    for (std::uint32_t pid = 1; pid <= 30; ++pid)
        report.processes.push_back(process(pid, "p", 1, 0));
    failures.add(failed_bind(EAGAIN));
    auto lines = texts(20, 60);
    EXPECT_EQ(lines.size(), 20u);
    for (const std::string &line : lines) EXPECT_LE(line.size(), 60u) << line;
    EXPECT_GE(index_of(lines, "RECENT FAILURES"), 0);
    EXPECT_GE(index_of(lines, "EAGAIN"), 0);
    EXPECT_GE(index_of(lines, "... 2"), 0);  // some scopes and processes are summarized
}

TEST_F(TopScreen, CutsLinesWithoutSplittingACharacter) {
    report.processes.push_back(process(1, "\xc3\xa9\xc3\xa9\xc3\xa9", 1, 0));  // "ééé"
    for (std::size_t cols = 9; cols <= 16; ++cols)
        for (const std::string &line : texts(40, cols)) {
            EXPECT_LE(line.size(), cols);
            if (!line.empty()) {
                EXPECT_NE(static_cast<unsigned char>(line.back()), 0xc3) << cols;
            }
        }
}

TEST_F(TopScreen, ProcessesWithoutAKnownOwnerAreLeftOut) {
    report.processes.push_back(process(0, "", 5, 0));
    auto lines = texts(40);
    EXPECT_EQ(lines[index_of(lines, "PROCESSES HOLDING MOST PORTS") + 2], "  none");
}

}  // namespace
}  // namespace portwatch
