// SPDX-License-Identifier: Apache-2.0
// docs/json.md against what the JSON reporter writes, both ways: every field the docs list for
// a line type appears in real output of that type, and every field written is documented. The
// written fields are read from the reporter's output for sample events and a model's warnings
// and report covering every line type and every optional field, not from a list kept here.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "output/run_summary_lines.h"
#include "model/port_model.h"
#include "output/reporter.h"
#include "sample_events.h"

namespace portwatch {
namespace {

using namespace portwatch::testing;
using Fields = std::map<std::string, std::set<std::string>>;  // line type -> field names

const char *const kJsonDoc = PORTWATCH_SOURCE_DIR "/docs/json.md";

std::string read_file(const char *path) {
    std::ifstream file(path);
    EXPECT_TRUE(file) << "cannot read " << path;
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
}

// The backticked names in `text`: "`a`, `b` and `c`" gives a, b, c.
std::set<std::string> backticked(const std::string &text) {
    static const std::regex name("`([a-z_]+)`");
    std::set<std::string> names;
    for (std::sregex_iterator at(text.begin(), text.end(), name), end; at != end; ++at)
        names.insert((*at)[1]);
    return names;
}

// The line types a table row of a section for `types` is about: those of the section, or the one
// its value names first in "`allocate_failed` only: ...".
std::set<std::string> types_of_row(const std::string &value, const std::set<std::string> &types) {
    static const std::regex only(R"(^ *`([a-z_]+)` only\b)");
    std::smatch match;
    if (std::regex_search(value, match, only) && types.contains(match[1])) return {match[1]};
    return types;
}

// The fields docs/json.md lists per line type: a "## `type`" (or "## `a` and `b`") section's
// table rows, first column. Every line has `type` and `ts`, as its opening says.
Fields documented_fields(const std::string &doc) {
    EXPECT_NE(doc.find("Every line has `type` and `ts`"), std::string::npos);
    Fields fields;
    std::set<std::string> types;
    std::istringstream lines(doc);
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("## ", 0) == 0) {
            types = backticked(line);
            for (const std::string &type : types) fields[type] = {"type", "ts"};
        } else if (line.rfind("| `", 0) == 0 && !types.empty()) {
            std::size_t divider = line.find('|', 1);
            std::string first_column = line.substr(1, divider - 1);
            for (const std::string &type : types_of_row(line.substr(divider + 1), types))
                fields[type].merge(backticked(first_column));
        }
    }
    return fields;
}

// Runs `use` against the JSON reporter writing into memory; the lines it wrote.
template <typename Use>
std::vector<nlohmann::json> json_lines(Use use) {
    char *buffer = nullptr;
    std::size_t size = 0;
    std::FILE *out = open_memstream(&buffer, &size);
    EXPECT_NE(out, nullptr);
    {
        auto reporter = make_reporter(OutputFormat::json, out, time_base());
        use(*reporter);
        reporter->flush();
    }
    std::fclose(out);
    std::vector<nlohmann::json> parsed;
    std::istringstream text(std::string(buffer, size));
    std::free(buffer);
    for (std::string line; std::getline(text, line);) parsed.push_back(nlohmann::json::parse(line));
    return parsed;
}

ReadyInfo sample_ready() {
    ReadyInfo ready;
    ready.realtime_ns = kRealtimeNs;
    ready.version = "1.2.3";
    ready.kernel_release = "6.1.0-50-cloud-amd64";
    ready.hooks = {"fexit/inet_hash_connect"};
    ready.hook_set = "fexit";
    ready.hook_set_reason = "fexit attaches";
    ready.metrics_address = "127.0.0.1:9101";
    return ready;
}

// Events with every optional field: a comm and a cgroup that are not UTF-8, a container, a
// failure, releases with and without a known owner.
std::vector<Event> sample_events() {
    AllocateEvent in_container = connect_allocate("curl\xff");
    in_container.task.cgroup_path = kDockerCgroup;
    AllocateEvent odd_cgroup = connect_allocate();
    odd_cgroup.task.cgroup_path = "/odd\xff";
    ReleaseEvent released = ipv6_release(ReleaseReason::time_wait);
    released.owner.comm = "nginx\xfe";
    released.owner.cgroup_path = "/odd\xff";
    AllocateEvent failed = failed_bind(EADDRINUSE);
    failed.task.comm = "dnsd\xff";
    failed.task.cgroup_path = "/odd\xff";
    ReleaseEvent unknown_owner = ipv6_release(ReleaseReason::tcp_closed);
    unknown_owner.owner_known = false;
    return {in_container, odd_cgroup, failed, failed_bind(EAGAIN), released, unknown_owner};
}

StatsSnapshot sample_stats(bool counters_failed) {
    StatsSnapshot stats;
    stats.realtime_ns = kRealtimeNs;
    stats.final = true;
    if (counters_failed)
        stats.counters_error = "cannot read the event counters: Bad file descriptor";
    return stats;
}

// A model whose 10-port range fills towards one destination, then refuses one more connect:
// its level changes (with and without a failure) and its report.
struct FilledModel {
    static constexpr std::uint64_t kSecond = 1'000'000'000;
    PortModel model{ModelSettings{}, PortModel::fixed_range({40000, 40009})};
    std::vector<Warning> warnings;
    Report report;

    FilledModel() {
        std::uint64_t now = kBootNs;
        for (std::uint16_t port = 40000; port <= 40009; ++port) {
            AllocateEvent made = connect_allocate();
            made.boot_ns = now += kSecond;
            made.sock.cookie = port;
            made.sock.local_port = port;
            apply(made);
        }
        AllocateEvent refused = connect_allocate();
        refused.boot_ns = now += kSecond;
        refused.sock.local_port = 0;
        refused.error = EADDRNOTAVAIL;
        apply(refused);
        // a NAT whose drops raise a warning of their own
        for (Warning &warning : model.count_nat_drops(4026532002u, 3, now))
            warnings.push_back(std::move(warning));
        report = model.report(now);
    }
    void apply(const Event &event) {
        for (Warning &warning : model.apply(event)) warnings.push_back(std::move(warning));
    }
};

Fields written_fields() {
    FilledModel filled;
    auto lines = json_lines([&](Reporter &reporter) {
        reporter.ready(sample_ready());
        for (const Event &event : sample_events()) reporter.event(event);
        for (const Warning &warning : filled.warnings) reporter.warning(warning);
        reporter.report(filled.report);
        reporter.stats(sample_stats(false));
        reporter.stats(sample_stats(true));
    });
    // `monitor -- CMD`'s summary, written beside the reporter (output/run_summary_lines.h)
    lines.push_back(nlohmann::json::parse(
        summary_json_line(RunSummary{}, SummaryContext{kRealtimeNs, {"make", "test"}, 0})));
    Fields fields;
    for (const nlohmann::json &line : lines)
        for (const auto &[key, value] : line.items()) fields[line["type"]].insert(key);
    return fields;
}

std::set<std::string> minus(const std::set<std::string> &from, const std::set<std::string> &take) {
    std::set<std::string> left;
    for (const std::string &name : from)
        if (!take.contains(name)) left.insert(name);
    return left;
}

std::string listed(const std::set<std::string> &names) {
    std::string text;
    for (const std::string &name : names) text += (text.empty() ? "" : ", ") + name;
    return text;
}

TEST(JsonDocs, TheSamplesWriteEveryLineType) {
    std::set<std::string> types;
    for (const auto &[type, fields] : written_fields()) types.insert(type);
    EXPECT_EQ(types, (std::set<std::string>{"ready", "allocate", "allocate_failed", "release",
                                            "warning", "report", "stats", "summary"}));
}

TEST(JsonDocs, EveryLineTypeWrittenHasASection) {
    Fields documented = documented_fields(read_file(kJsonDoc));
    for (const auto &[type, fields] : written_fields())
        EXPECT_TRUE(documented.contains(type)) << "docs/json.md has no section for " << type;
}

TEST(JsonDocs, EveryFieldWrittenIsDocumented) {
    Fields documented = documented_fields(read_file(kJsonDoc));
    for (const auto &[type, fields] : written_fields())
        EXPECT_EQ(listed(minus(fields, documented[type])), "")
            << type << " lines write these fields docs/json.md does not list for them";
}

TEST(JsonDocs, EveryFieldDocumentedIsWritten) {
    Fields written = written_fields();
    for (const auto &[type, fields] : documented_fields(read_file(kJsonDoc)))
        EXPECT_EQ(listed(minus(fields, written[type])), "")
            << "docs/json.md lists these fields for " << type << " lines, which never write them";
}

}  // namespace
}  // namespace portwatch
