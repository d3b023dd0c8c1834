// SPDX-License-Identifier: Apache-2.0
// The end-of-run summary of `monitor -- CMD`: built from events (model/run_summary.h) and
// written as one JSON line or a text block (output/run_summary_lines.h).
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cerrno>
#include <nlohmann/json.hpp>
#include <string>

#include "model/run_summary.h"
#include "output/run_summary_lines.h"
#include "sample_events.h"

namespace portwatch {
namespace {

using testing::ipv4;
using testing::kRealtimeNs;
using testing::kTs;

AllocateEvent allocation(std::uint64_t cookie, std::uint32_t pid, Proto proto, How how,
                         std::uint16_t port, std::uint16_t remote_port = 0) {
    AllocateEvent event;
    event.sock.cookie = cookie;
    event.sock.netns = 4026531840;
    event.sock.proto = proto;
    event.sock.local_addr = ipv4(127, 0, 0, 1);
    event.sock.local_port = port;
    if (remote_port) {
        event.sock.remote_addr = ipv4(10, 0, 0, 2);
        event.sock.remote_port = remote_port;
    }
    event.task.pid = pid;
    event.task.comm = "app" + std::to_string(pid);
    event.how = how;
    return event;
}

AllocateEvent failure(int error) {
    AllocateEvent event = allocation(0, 7, Proto::tcp, How::bind, 80);
    event.error = error;
    return event;
}

ReleaseEvent release_of(const AllocateEvent &allocate) {
    ReleaseEvent event;
    event.sock = allocate.sock;
    event.owner = allocate.task;
    event.how = allocate.how;
    return event;
}

TEST(RunSummary, CountsAllocationsByKindAndFailuresByErrno) {
    RunSummaryBuilder builder;
    builder.add(allocation(1, 10, Proto::tcp, How::connect_autobind, 40001, 443));
    builder.add(allocation(2, 10, Proto::tcp, How::connect_autobind, 40002, 443));
    builder.add(allocation(3, 11, Proto::udp, How::bind_ephemeral, 40003));
    builder.add(failure(EADDRINUSE));
    builder.add(failure(EADDRINUSE));
    builder.add(failure(EADDRNOTAVAIL));
    RunSummary summary = builder.summary();
    EXPECT_EQ((summary.allocations[{Proto::tcp, How::connect_autobind}]), 2u);
    EXPECT_EQ((summary.allocations[{Proto::udp, How::bind_ephemeral}]), 1u);
    EXPECT_EQ(summary.allocations.size(), 2u);  // failures are no allocations
    EXPECT_EQ(summary.failures_by_errno[EADDRINUSE], 2u);
    EXPECT_EQ(summary.failures_by_errno[EADDRNOTAVAIL], 1u);
}

TEST(RunSummary, PeakIsTheMostHeldAtOncePerScope) {
    RunSummaryBuilder builder;
    AllocateEvent a = allocation(1, 10, Proto::tcp, How::connect_autobind, 40001, 443);
    AllocateEvent b = allocation(2, 10, Proto::tcp, How::connect_autobind, 40002, 443);
    AllocateEvent c = allocation(3, 10, Proto::tcp, How::connect_autobind, 40003, 443);
    builder.add(a);
    builder.add(b);
    builder.add(release_of(a));
    builder.add(release_of(b));
    builder.add(c);  // one at a time now: the peak stays 2
    builder.add(allocation(4, 10, Proto::tcp, How::bind_ephemeral, 40004));
    RunSummary summary = builder.summary();
    ASSERT_EQ(summary.peaks.size(), 2u);
    EXPECT_EQ(summary.peaks[0].key.kind, ScopeKind::destination);
    EXPECT_EQ(summary.peaks[0].key.remote_port, 443);
    EXPECT_EQ(summary.peaks[0].peak, 2u);
    EXPECT_EQ(summary.peaks[1].key.kind, ScopeKind::bind);
    EXPECT_EQ(summary.peaks[1].peak, 1u);
}

TEST(RunSummary, StillHeldAreThePortsNotReleased) {
    RunSummaryBuilder builder;
    AllocateEvent released = allocation(1, 12, Proto::udp, How::bind_ephemeral, 40001);
    builder.add(allocation(2, 12, Proto::tcp, How::listen_autobind, 40002));
    builder.add(released);
    builder.add(allocation(3, 9, Proto::udp, How::sendto_autobind, 40003));
    builder.add(release_of(released));
    ReleaseEvent unknown = release_of(allocation(99, 1, Proto::tcp, How::bind, 22));
    builder.add(unknown);  // allocated before the run: nothing to take away
    RunSummary summary = builder.summary();
    ASSERT_EQ(summary.still_held.size(), 2u);
    EXPECT_EQ(summary.still_held[0].pid, 9u);  // by pid
    EXPECT_EQ(summary.still_held[0].sock.local_port, 40003);
    EXPECT_EQ(summary.still_held[0].how, How::sendto_autobind);
    EXPECT_EQ(summary.still_held[1].pid, 12u);
    EXPECT_EQ(summary.still_held[1].comm, "app12");
    EXPECT_EQ(summary.still_held[1].sock.local_port, 40002);
}

RunSummary sample_summary() {
    RunSummaryBuilder builder;
    builder.add(allocation(1, 10, Proto::tcp, How::connect_autobind, 40001, 443));
    builder.add(failure(EADDRINUSE));
    return builder.summary();
}

TEST(RunSummaryLines, JsonIsOneSummaryLine) {
    SummaryContext context{kRealtimeNs, {"make", "test"}, 2};
    std::string line = summary_json_line(sample_summary(), context);
    testing::expect_one_line(line);
    nlohmann::json json = nlohmann::json::parse(line);
    EXPECT_EQ(json["type"], "summary");
    EXPECT_EQ(json["ts"], kTs);
    EXPECT_EQ(json["command"], nlohmann::json({"make", "test"}));
    EXPECT_EQ(json["exit_code"], 2);
    EXPECT_EQ(json["allocations"],
              nlohmann::json::parse(R"([{"proto":"tcp","how":"connect_autobind","count":1}])"));
    EXPECT_EQ(json["failures"],
              nlohmann::json::parse(R"([{"errno":98,"error":"EADDRINUSE","count":1}])"));
    EXPECT_EQ(json["peaks"], nlohmann::json::parse(
                                 R"([{"scope":"destination","netns":4026531840,"proto":"tcp",
                                      "local_addr":"127.0.0.1","remote_addr":"10.0.0.2",
                                      "remote_port":443,"peak":1}])"));
    EXPECT_EQ(json["still_held"], nlohmann::json::parse(
                                      R"([{"pid":10,"comm":"app10","proto":"tcp","family":"ipv4",
                                           "netns":4026531840,"local_addr":"127.0.0.1",
                                           "local_port":40001,"how":"connect_autobind"}])"));
}

TEST(RunSummaryLines, JsonSaysWhenTheCommandDidNotExit) {
    nlohmann::json json =
        nlohmann::json::parse(summary_json_line(RunSummary{}, {kRealtimeNs, {"x"}, {}}));
    EXPECT_TRUE(json["exit_code"].is_null());
    EXPECT_TRUE(json["still_held"].empty());
}

TEST(RunSummaryLines, TextBlockNamesTheLeaks) {
    std::string text = summary_text_block(sample_summary(), {kRealtimeNs, {"make", "test"}, 2});
    EXPECT_EQ(text,
              "# summary of make (exit 2)\n"
              "#   allocations: tcp/connect_autobind 1\n"
              "#   failures: EADDRINUSE 1\n"
              "#   peak tcp 127.0.0.1->10.0.0.2:443 netns 4026531840: 1 held at once\n"
              "#   still held when make exited: 1\n"
              "#     app10[10] tcp 127.0.0.1:40001 connect_autobind netns 4026531840\n");
}

}  // namespace
}  // namespace portwatch
