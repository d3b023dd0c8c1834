// SPDX-License-Identifier: Apache-2.0
// The Prometheus exposition from synthetic usage, stats and events: names, labels,
// escaping, the top-N bound on label sets, and counters that follow the events.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "output/metrics.h"
#include "sample_events.h"

namespace portwatch {
namespace {

using testing::connect_allocate;
using testing::failed_bind;
using testing::ipv4;

ScopeUsage destination(std::uint16_t remote_port, std::size_t in_use, std::size_t capacity) {
    ScopeUsage usage;
    usage.key.kind = ScopeKind::destination;
    usage.key.netns = 4026531840u;
    usage.key.local_addr = ipv4(10, 0, 0, 1);
    usage.key.remote_addr = ipv4(192, 168, 1, 2);
    usage.key.remote_port = remote_port;
    usage.in_use = in_use;
    usage.capacity = capacity;
    usage.utilization = double(in_use) / double(capacity);
    return usage;
}

ScopeUsage bind_scope(std::size_t in_use) {
    ScopeUsage usage;
    usage.key.kind = ScopeKind::bind;
    usage.key.netns = 4026531840u;
    usage.in_use = in_use;
    usage.capacity = 28232;
    usage.utilization = double(in_use) / 28232;
    usage.time_wait = 2;
    usage.eta_seconds = 90.5;
    usage.level = WarningLevel::warning;
    return usage;
}

ProcessUsage process(std::uint32_t pid, std::string comm, std::size_t ports) {
    ProcessUsage usage;
    usage.pid = pid;
    usage.comm = std::move(comm);
    usage.netns = 4026531840u;
    usage.held[{Proto::tcp, How::connect_autobind}] = ports;
    usage.cgroup_path = "/system.slice/" + usage.comm + ".service";
    return usage;
}

class Metrics : public ::testing::Test {
  protected:
    std::string render(std::size_t top_n = 10) {
        MetricsInput input;
        input.version = "0.1.0";
        input.kernel_release = "6.18.0";
        input.hook_set = "fexit";
        input.usage = &usage;
        input.stats = &stats;
        input.counters = &counters;
        stats.tracked_sockets = 42;
        input.top_n = top_n;
        return render_prometheus(input);
    }

    Report usage;
    StatsSnapshot stats;
    EventCounters counters;
};

std::vector<std::string> lines_of(const std::string &text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

// The sample lines of one metric family.
std::vector<std::string> samples(const std::string &text, const std::string &name) {
    std::vector<std::string> found;
    for (const std::string &line : lines_of(text))
        if (line.rfind(name + "{", 0) == 0 || line.rfind(name + " ", 0) == 0) found.push_back(line);
    return found;
}

bool has_line(const std::string &text, const std::string &line) {
    auto lines = lines_of(text);
    return std::find(lines.begin(), lines.end(), line) != lines.end();
}

TEST_F(Metrics, EveryFamilyHasOneHelpAndOneTypeBeforeItsSamples) {
    usage.netns.push_back({4026531840u, {}, {bind_scope(3), destination(443, 5, 10)}, {}});
    usage.processes.push_back(process(1234, "curl", 5));
    counters.count(Event{connect_allocate()});
    std::map<std::string, int> helps, types;
    std::string current;
    for (const std::string &line : lines_of(render())) {
        std::istringstream words(line);
        std::string first, second, name;
        words >> first >> second >> name;
        if (first == "#" && second == "HELP")
            ++helps[current = name];
        else if (first == "#" && second == "TYPE")
            ++types[name];
        else
            EXPECT_EQ(line.rfind(current, 0), 0u) << line << " outside its family " << current;
    }
    EXPECT_GT(helps.size(), 20u);
    for (const auto &[name, count] : helps) {
        EXPECT_EQ(count, 1) << name;
        EXPECT_EQ(types[name], 1) << name;
    }
}

TEST_F(Metrics, ScopeGaugesCarryTheScopeLabels) {
    usage.netns.push_back({4026531840u, {}, {bind_scope(3), destination(443, 5, 10)}, {}});
    std::string text = render();
    EXPECT_TRUE(has_line(text,
                         "portwatch_scope_ports_in_use{netns=\"4026531840\",scope=\"bind\","
                         "proto=\"tcp\"} 3"));
    EXPECT_TRUE(
        has_line(text,
                 "portwatch_scope_ports_capacity{netns=\"4026531840\",scope=\"destination\","
                 "proto=\"tcp\",src_addr=\"10.0.0.1\",dst_addr=\"192.168.1.2\","
                 "dst_port=\"443\"} 10"));
    EXPECT_TRUE(has_line(text,
                         "portwatch_scope_utilization_ratio{netns=\"4026531840\","
                         "scope=\"destination\",proto=\"tcp\",src_addr=\"10.0.0.1\","
                         "dst_addr=\"192.168.1.2\",dst_port=\"443\"} 0.5"));
    EXPECT_TRUE(has_line(
        text,
        "portwatch_scope_time_wait_ports{netns=\"4026531840\",scope=\"bind\",proto=\"tcp\"} 2"));
    EXPECT_TRUE(has_line(
        text, "portwatch_scope_level{netns=\"4026531840\",scope=\"bind\",proto=\"tcp\"} 1"));
    // Only the filling scope has an ETA.
    EXPECT_EQ(
        samples(text, "portwatch_scope_exhaustion_eta_seconds"),
        std::vector<std::string>{"portwatch_scope_exhaustion_eta_seconds{netns=\"4026531840\","
                                 "scope=\"bind\",proto=\"tcp\"} 90.5"});
}

TEST_F(Metrics, ANatScopeHasItsAddressesAndItsNetnsItsDrops) {
    ScopeUsage nat = destination(80, 8, 10);
    nat.key.kind = ScopeKind::nat;
    nat.key.netns = 4026532002u;
    NetnsReport node{4026532002u, {}, {nat}, {}};
    node.nat_drops = 6;
    usage.netns.push_back(node);
    usage.netns.push_back({4026531840u, {}, {bind_scope(3)}, {}});  // translates nothing
    std::string text = render();
    EXPECT_TRUE(has_line(text,
                         "portwatch_scope_ports_in_use{netns=\"4026532002\",scope=\"nat\","
                         "proto=\"tcp\",src_addr=\"10.0.0.1\",dst_addr=\"192.168.1.2\","
                         "dst_port=\"80\"} 8"));
    EXPECT_EQ(samples(text, "portwatch_nat_drops_total"),
              std::vector<std::string>{"portwatch_nat_drops_total{netns=\"4026532002\"} 6"});
    EXPECT_TRUE(has_line(text, "portwatch_scopes{scope=\"nat\"} 1"));
}

TEST_F(Metrics, OnlyTheFullestDestinationsGetSeries) {
    std::vector<ScopeUsage> scopes{bind_scope(1)};
    for (std::uint16_t port = 1; port <= 5; ++port) scopes.push_back(destination(port, port, 10));
    usage.netns.push_back({4026531840u, {}, scopes, {}});
    std::string text = render(2);
    auto in_use = samples(text, "portwatch_scope_ports_in_use");
    ASSERT_EQ(in_use.size(), 3u);  // the bind scope and the two fullest destinations
    EXPECT_NE(in_use[1].find("dst_port=\"5\""), std::string::npos) << in_use[1];
    EXPECT_NE(in_use[2].find("dst_port=\"4\""), std::string::npos) << in_use[2];
    EXPECT_TRUE(has_line(text, "portwatch_scopes{scope=\"destination\"} 5"));
    EXPECT_TRUE(has_line(text, "portwatch_scopes{scope=\"bind\"} 1"));
    EXPECT_TRUE(has_line(text, "portwatch_scopes{scope=\"udp\"} 0"));
}

TEST_F(Metrics, CausesAreOneSeriesEachOnTheExportedScopes) {
    ScopeUsage bind = bind_scope(3);
    Cause time_wait;
    time_wait.kind = CauseKind::time_wait;
    time_wait.share = 0.7;
    Cause holder;
    holder.kind = CauseKind::holder;
    holder.share = 0.25;
    bind.causes = {time_wait, holder};
    std::vector<ScopeUsage> scopes{bind};
    for (std::uint16_t port = 1; port <= 3; ++port) {
        scopes.push_back(destination(port, 9, 10));
        scopes.back().causes = {time_wait};
    }
    usage.netns.push_back({4026531840u, {}, scopes, {}});
    std::string text = render(2);
    EXPECT_TRUE(has_line(text,
                         "portwatch_scope_cause{netns=\"4026531840\",scope=\"bind\",proto=\"tcp\","
                         "cause=\"time_wait\"} 0.7"));
    EXPECT_TRUE(has_line(text,
                         "portwatch_scope_cause{netns=\"4026531840\",scope=\"bind\",proto=\"tcp\","
                         "cause=\"holder\"} 0.25"));
    EXPECT_EQ(samples(text, "portwatch_scope_cause").size(), 2u + 2u)
        << "the bind scope's two, and one for each of the two destinations --metrics-top keeps";
}

TEST_F(Metrics, OnlyTheTopProcessesWithPortsGetSeries) {
    for (std::uint32_t pid = 1; pid <= 4; ++pid)
        usage.processes.push_back(process(pid, "p" + std::to_string(pid), 10 - pid));
    usage.processes.push_back(process(99, "idle", 0));
    auto held = samples(render(3), "portwatch_process_ports_held");
    ASSERT_EQ(held.size(), 3u);
    EXPECT_EQ(held[0],
              "portwatch_process_ports_held{pid=\"1\",comm=\"p1\",netns=\"4026531840\","
              "cgroup=\"/system.slice/p1.service\",container_id=\"\",container_runtime=\"\"} 9");
    EXPECT_EQ(samples(render(10), "portwatch_process_ports_held").size(), 4u);  // never `idle`
}

TEST_F(Metrics, ProcessesWithoutAKnownOwnerAreNotAttributed) {
    usage.processes.push_back(process(0, "", 7));  // sockets from the tables with no owner found
    EXPECT_TRUE(samples(render(), "portwatch_process_ports_held").empty());
}

TEST_F(Metrics, ProcessesInAContainerNameIt) {
    const std::string id(64, 'a');
    ProcessUsage in_docker = process(5, "redis", 2);
    in_docker.cgroup_path = "/system.slice/docker-" + id + ".scope";
    usage.processes.push_back(in_docker);
    EXPECT_EQ(samples(render(), "portwatch_process_ports_held"),
              std::vector<std::string>{"portwatch_process_ports_held{pid=\"5\",comm=\"redis\","
                                       "netns=\"4026531840\",cgroup=\"/system.slice/docker-" +
                                       id + ".scope\",container_id=\"" + id +
                                       "\",container_runtime=\"docker\"} 2"});
}

TEST_F(Metrics, LabelValuesAreEscapedAndValidUtf8) {
    usage.processes.push_back(process(7, std::string("a\"b\\c\nd\xff"), 1));
    auto held = samples(render(), "portwatch_process_ports_held");
    ASSERT_EQ(held.size(), 1u);
    EXPECT_EQ(held[0],
              "portwatch_process_ports_held{pid=\"7\",comm=\"a\\\"b\\\\c\\\\x0ad\\\\xff\","
              "netns=\"4026531840\",cgroup=\"/system.slice/a\\\"b\\\\c\\\\x0ad\\\\xff.service\","
              "container_id=\"\",container_runtime=\"\"} 1");
}

// A scrape read with curl or cat must not retitle the terminal (OSC) or reorder the line.
TEST_F(Metrics, LabelValuesCarryNoTerminalControls) {
    usage.processes.push_back(process(8, "\x1b]0;pwned\x07", 1));
    usage.processes.push_back(process(9,
                                      "\xc2\x9b"
                                      "31m\xe2\x80\xae"
                                      "evil",
                                      1));
    std::string text = render();
    for (const char *control : {"\x1b", "\x07", "\xc2\x9b", "\xe2\x80\xae"})
        EXPECT_EQ(text.find(control), std::string::npos);
    EXPECT_NE(text.find("comm=\"\\\\x1b]0;pwned\\\\x07\""), std::string::npos) << text;
    EXPECT_NE(text.find("comm=\"\\\\xc2\\\\x9b31m\\\\xe2\\\\x80\\\\xaeevil\""), std::string::npos)
        << text;
}

TEST_F(Metrics, CountersFollowTheEvents) {
    counters.count(Event{connect_allocate()});
    counters.count(Event{connect_allocate()});
    counters.count(Event{failed_bind(EADDRINUSE)});
    counters.count(Event{testing::ipv6_release(ReleaseReason::time_wait)});
    Warning warning;
    warning.level = WarningLevel::critical;
    counters.count(warning);
    std::string text = render();
    EXPECT_TRUE(has_line(
        text,
        "portwatch_allocations_total{how=\"connect_autobind\",proto=\"tcp\",family=\"ipv4\"} 2"));
    EXPECT_EQ(samples(text, "portwatch_allocation_failures_total"),
              std::vector<std::string>{"portwatch_allocation_failures_total{how=\"bind_ephemeral\","
                                       "proto=\"udp\",errno=\"EADDRINUSE\"} 1"});
    EXPECT_EQ(samples(text, "portwatch_releases_total").size(), 1u);
    EXPECT_NE(samples(text, "portwatch_releases_total")[0].find("reason=\"time_wait\"} 1"),
              std::string::npos);
    EXPECT_TRUE(has_line(text, "portwatch_warnings_total{level=\"critical\"} 1"));
    EXPECT_TRUE(has_line(text, "portwatch_warnings_total{level=\"warning\"} 0"));
}

TEST_F(Metrics, AgentStatsAreExported) {
    stats.kernel.emitted[PW_RECORD_ALLOCATE][PW_HOW_BIND] = 3;
    stats.kernel.emitted[PW_RECORD_ALLOCATE][PW_HOW_CONNECT_AUTOBIND] = 4;
    stats.kernel.lost[PW_RECORD_RELEASE][PW_HOW_NONE] = 5;
    stats.reconcile.runs = 2;
    stats.reconcile.added = 6;
    stats.reconcile.last_ms = 250;
    std::string text = render();
    EXPECT_TRUE(has_line(text, "portwatch_events_total{type=\"allocate\"} 7"));
    EXPECT_TRUE(has_line(text, "portwatch_events_lost_total{type=\"release\"} 5"));
    EXPECT_TRUE(has_line(text, "portwatch_events_lost_total{type=\"allocate\"} 0"));
    EXPECT_TRUE(has_line(text, "portwatch_reconcile_runs_total 2"));
    EXPECT_TRUE(has_line(text, "portwatch_reconcile_corrections_total{kind=\"added\"} 6"));
    EXPECT_TRUE(has_line(text, "portwatch_reconcile_duration_seconds{pass=\"last\"} 0.25"));
    EXPECT_TRUE(has_line(text, "portwatch_tracked_sockets 42"));
    EXPECT_TRUE(has_line(
        text, "portwatch_build_info{version=\"0.1.0\",kernel=\"6.18.0\",hooks=\"fexit\"} 1"));
}

TEST_F(Metrics, ReachSaysWhatTheAgentCannotSee) {
    stats.reach = {true, false, true};
    std::string text = render();
    EXPECT_TRUE(has_line(text, "portwatch_reach{aspect=\"every_netns\"} 1"));
    EXPECT_TRUE(has_line(text, "portwatch_reach{aspect=\"every_owner\"} 0"));
    EXPECT_TRUE(has_line(text, "portwatch_reach{aspect=\"every_cgroup\"} 1"));
}

}  // namespace
}  // namespace portwatch
