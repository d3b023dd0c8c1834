// SPDX-License-Identifier: Apache-2.0
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "app/wall_clock.h"
#include "output/reporter.h"
#include "sample_events.h"

namespace portwatch {
namespace {

using namespace portwatch::testing;

// Runs `use` against a reporter writing into memory and returns what it wrote.
template <typename Use>
std::string capture(OutputFormat format, Use use, EventLines event_lines = EventLines::all) {
    char *buffer = nullptr;
    std::size_t size = 0;
    std::FILE *out = open_memstream(&buffer, &size);
    if (!out) return "";
    {
        auto reporter = make_reporter(format, out, time_base(), event_lines);
        use(*reporter);
        reporter->flush();
    }
    std::fclose(out);
    std::string text(buffer, size);
    std::free(buffer);
    return text;
}

std::vector<std::string> lines_of(const std::string &text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

TEST(Reporter, JsonWritesOneObjectPerLine) {
    std::string out = capture(OutputFormat::json, [](Reporter &r) {
        r.ready(ReadyInfo{});
        r.event(connect_allocate("\xff\n"));
        r.event(ipv6_release(ReleaseReason::tcp_closed));
        r.stats(StatsSnapshot{});
    });
    auto lines = lines_of(out);
    ASSERT_EQ(lines.size(), 4u) << out;
    const char *types[] = {"ready", "allocate", "release", "stats"};
    for (std::size_t i = 0; i < lines.size(); i++) {
        nlohmann::json j;
        ASSERT_NO_THROW(j = nlohmann::json::parse(lines[i])) << lines[i];
        EXPECT_EQ(j["type"], types[i]);
    }
    EXPECT_EQ(nlohmann::json::parse(lines[1])["ts"], kTs);
}

TEST(Reporter, TextWritesTheHeaderAfterReady) {
    std::string out = capture(OutputFormat::text, [](Reporter &r) {
        ReadyInfo ready;
        ready.version = "0.1.0";
        r.ready(ready);
        r.event(connect_allocate());
    });
    auto lines = lines_of(out);
    ASSERT_EQ(lines.size(), 3u) << out;
    EXPECT_EQ(lines[0].rfind("# portwatch 0.1.0 ready", 0), 0u);
    EXPECT_EQ(lines[1].rfind("TIME ", 0), 0u);
    EXPECT_EQ(lines[2].rfind("10:00:00.123456 ", 0), 0u);
}

// The types of the lines one of each kind of output gives under --events `lines`.
std::vector<std::string> types_written(EventLines lines) {
    std::string out = capture(
        OutputFormat::json,
        [](Reporter &r) {
            r.ready(ReadyInfo{});
            r.event(connect_allocate());
            r.event(failed_bind(EADDRINUSE));
            r.event(ipv6_release(ReleaseReason::tcp_closed));
            r.warning(Warning{});
            r.report(Report{});
            r.stats(StatsSnapshot{});
        },
        lines);
    std::vector<std::string> types;
    for (const std::string &line : lines_of(out))
        types.push_back(nlohmann::json::parse(line)["type"]);
    return types;
}

TEST(Reporter, EventsModeChoosesTheEventLinesOnly) {
    using Types = std::vector<std::string>;
    EXPECT_EQ(types_written(EventLines::all), (Types{"ready", "allocate", "allocate_failed",
                                                     "release", "warning", "report", "stats"}));
    EXPECT_EQ(types_written(EventLines::failures),
              (Types{"ready", "allocate_failed", "warning", "report", "stats"}));
    EXPECT_EQ(types_written(EventLines::none), (Types{"ready", "warning", "report", "stats"}));
}

TEST(Reporter, TextFollowsTheEventsModeToo) {
    std::string out = capture(
        OutputFormat::text,
        [](Reporter &r) {
            r.event(connect_allocate());
            r.event(failed_bind(EADDRINUSE));
        },
        EventLines::failures);
    auto lines = lines_of(out);
    ASSERT_EQ(lines.size(), 1u) << out;
    EXPECT_NE(lines[0].find(" FAILED "), std::string::npos) << lines[0];
}

// Issue 32: the offset was taken once at start, so after an NTP step event lines kept the old
// wall clock while stats lines read the new one.
TEST(Reporter, EventAndStatsTimesAgreeAfterTheWallClockIsStepped) {
    ClockReading clock{kRealtimeNs, static_cast<std::int64_t>(kBootNs)};
    Clocks clocks = [&clock] { return clock; };
    std::string out = capture(OutputFormat::json, [&](Reporter &r) {
        follow_wall_clock(clocks, r);            // the first loop turn
        clock.realtime_ns += 3'600'000'000'000;  // NTP steps the wall clock an hour ahead
        clock.realtime_ns += 1'000'000'000;      // and a second passes
        clock.boottime_ns += 1'000'000'000;
        ClockReading now = follow_wall_clock(clocks, r);  // the next turn
        AllocateEvent event = connect_allocate();
        event.boot_ns = static_cast<std::uint64_t>(now.boottime_ns);
        r.event(event);
        StatsSnapshot stats;
        stats.realtime_ns = now.realtime_ns;
        r.stats(stats);
    });
    auto lines = lines_of(out);
    ASSERT_EQ(lines.size(), 2u) << out;
    EXPECT_EQ(nlohmann::json::parse(lines[0])["ts"], "2026-11-21T11:00:01.123456Z");
    EXPECT_EQ(nlohmann::json::parse(lines[1])["ts"], "2026-11-21T11:00:01.123456Z");
}

}  // namespace
}  // namespace portwatch
