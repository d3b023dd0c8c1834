// SPDX-License-Identifier: Apache-2.0
#include "output/report_bound.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "output/json_format.h"
#include "output/text_lines.h"
#include "sample_events.h"

namespace portwatch {
namespace {

using testing::ipv4;
using testing::task;
using testing::time_base;

constexpr std::uint32_t kNetns = 4026532001u;
constexpr std::uint64_t kSecond = 1'000'000'000;

ScopeUsage scope_at(double utilization, WarningLevel level = WarningLevel::ok) {
    ScopeUsage usage;
    usage.key.kind = ScopeKind::destination;
    usage.key.netns = kNetns;
    usage.capacity = 100;
    usage.in_use = std::size_t(utilization * 100);
    usage.time_wait = 1;
    usage.utilization = utilization;
    usage.level = level;
    return usage;
}

ProcessUsage process_in(std::uint32_t netns, std::uint32_t pid, std::size_t held) {
    ProcessUsage usage;
    usage.pid = pid;
    usage.netns = netns;
    usage.held[{Proto::tcp, How::connect_autobind}] = held;
    usage.allocations = 2;
    usage.failures = 1;
    return usage;
}

TEST(ReportBound, KeepsTheFullestScopesAndSumsUpTheRest) {
    Report report;
    report.netns.push_back({kNetns, {}, {}, {}});
    for (double utilization : {0.7, 0.5, 0.3, 0.2, 0.1})
        report.netns[0].scopes.push_back(scope_at(utilization));
    bound_report(report, 2);
    const NetnsReport &ns = report.netns[0];
    ASSERT_EQ(ns.scopes.size(), 2u);
    EXPECT_DOUBLE_EQ(ns.scopes[1].utilization, 0.5);
    EXPECT_EQ(ns.scopes_left_out.count, 3u);
    EXPECT_EQ(ns.scopes_left_out.in_use, 30u + 20u + 10u);
    EXPECT_EQ(ns.scopes_left_out.time_wait, 3u);
    EXPECT_DOUBLE_EQ(ns.scopes_left_out.utilization, 0.3);
    EXPECT_EQ(ns.scopes_left_out.level, WarningLevel::ok);
}

TEST(ReportBound, NeverLeavesOutAScopeThatIsNotOk) {
    Report report;
    report.netns.push_back({kNetns, {}, {}, {}});
    report.netns[0].scopes = {scope_at(0.7), scope_at(0.5), scope_at(0.3),
                              scope_at(0.1, WarningLevel::critical),  // a failed allocation
                              scope_at(0.05)};
    bound_report(report, 2);
    const NetnsReport &ns = report.netns[0];
    ASSERT_EQ(ns.scopes.size(), 3u);
    EXPECT_EQ(ns.scopes[2].level, WarningLevel::critical);
    EXPECT_EQ(ns.scopes_left_out.count, 2u);
}

TEST(ReportBound, KeepsTheTopProcessesOfEachNetns) {
    Report report;
    for (std::uint32_t pid = 1; pid <= 3; pid++) {
        report.processes.push_back(process_in(kNetns, pid, 10 - pid));
        report.processes.push_back(process_in(kNetns + 1, 100 + pid, 10 - pid));
    }
    bound_report(report, 2);
    ASSERT_EQ(report.processes.size(), 4u);
    for (const ProcessUsage &kept : report.processes) EXPECT_NE(kept.pid % 100, 3u) << kept.pid;
    EXPECT_EQ(report.processes_left_out.count, 2u);
    EXPECT_EQ(report.processes_left_out.ports_held, 7u + 7u);
    EXPECT_EQ(report.processes_left_out.allocations, 4u);
    EXPECT_EQ(report.processes_left_out.failures, 2u);
}

TEST(ReportBound, ZeroKeepsEverything) {
    Report report;
    report.netns.push_back({kNetns, {}, {scope_at(0.5), scope_at(0.4)}, {}});
    report.processes = {process_in(kNetns, 1, 1), process_in(kNetns, 2, 1)};
    bound_report(report, 0);
    EXPECT_EQ(report.netns[0].scopes.size(), 2u);
    EXPECT_EQ(report.processes.size(), 2u);
    EXPECT_EQ(report.netns[0].scopes_left_out.count, 0u);
    EXPECT_EQ(report.processes_left_out.count, 0u);
}

// A host that talks to 20,000 upstreams from 5,000 processes, through the model.
class BusyHostReport : public ::testing::Test {
  protected:
    static constexpr int kDestinations = 20'000;
    static constexpr int kProcesses = 5'000;
    static constexpr std::size_t kTop = kDefaultReportTop;
    PortModel model{ModelSettings{}, PortModel::fixed_range({20000, 60999})};
    std::uint64_t now = 100 * kSecond;

    Report busy_report() {
        for (int i = 0; i < kDestinations; i++) {
            AllocateEvent e;
            e.boot_ns = now;
            e.sock.cookie = std::uint64_t(i) + 1;
            e.sock.netns = kNetns;
            e.sock.proto = Proto::tcp;
            e.sock.local_addr = ipv4(10, 0, 0, 1);
            e.sock.local_port = std::uint16_t(20000 + i);
            e.sock.remote_addr = ipv4(198, 18, std::uint8_t(i / 250), std::uint8_t(i % 250));
            e.sock.remote_port = 443;
            e.task = task("client");
            e.task.pid = e.task.tid = std::uint32_t(1000 + i % kProcesses);
            e.how = How::connect_autobind;
            e.syscall = Syscall::connect;
            model.apply(e);
        }
        now += 10 * kSecond;
        Report report = model.report(now);
        bound_report(report, kTop);
        return report;
    }
};

TEST_F(BusyHostReport, JsonHasTopScopesAndProcessesAndSaysHowManyWereLeftOut) {
    nlohmann::json json = to_json(busy_report(), time_base());
    ASSERT_EQ(json["netns"].size(), 1u);
    const nlohmann::json &ns = json["netns"][0];
    EXPECT_EQ(ns["scopes"].size(), kTop);
    EXPECT_EQ(ns["scopes_left_out"]["count"], kDestinations + 1 - int(kTop))
        << "every destination and the bind scope";
    EXPECT_EQ(ns["scopes_left_out"]["level"], "ok");
    EXPECT_EQ(json["processes"].size(), kTop);
    EXPECT_EQ(json["processes_left_out"]["count"], kProcesses - int(kTop));
    EXPECT_EQ(json["processes_left_out"]["ports_held_total"],
              kDestinations - int(kTop) * kDestinations / kProcesses);
    EXPECT_LT(json.dump().size(), 64u * 1024) << "one line a log pipeline keeps";
}

TEST_F(BusyHostReport, TextHasOneRowPerKeptScopeAndProcessPlusTheSummaries) {
    std::string text = text_report(busy_report(), time_base());
    std::size_t lines = std::count(text.begin(), text.end(), '\n');
    EXPECT_EQ(lines, 1 + 1 + kTop + 1 + 1 + kTop + 1) << text;
    EXPECT_NE(text.find(" bind "), std::string::npos) << "the fullest scope (48.8%) is kept";
    EXPECT_NE(text.find("... 19981 more scopes: 19981 in use, 0 TIME_WAIT, fullest 0.0% ok\n"),
              std::string::npos)
        << text;
    EXPECT_NE(
        text.find("... 4980 more processes: 19920 ports held, 19920 allocations, 0 failures\n"),
        std::string::npos)
        << text;
}

}  // namespace
}  // namespace portwatch
