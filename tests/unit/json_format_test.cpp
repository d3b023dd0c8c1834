// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "output/json_format.h"
#include "sample_events.h"

namespace portwatch {
namespace {

using namespace portwatch::testing;

// The line as a consumer reads it: strict parse (throws on invalid UTF-8),
// key order kept.
Json parse_line(const std::string &line) {
    expect_one_line(line);
    return Json::parse(line);
}

// What the monitor writes per event: the line streamed without a tree.
Json event_line(const Event &event) {
    return parse_line(json_line(event, time_base()));
}

std::vector<std::string> keys_of(const Json &object) {
    std::vector<std::string> keys;
    for (const auto &item : object.items()) keys.push_back(item.key());
    return keys;
}

void expect_header(const Json &j, const char *type) {
    auto keys = keys_of(j);
    ASSERT_GE(keys.size(), 2u);
    EXPECT_EQ(keys[0], "type");
    EXPECT_EQ(keys[1], "ts");
    EXPECT_EQ(j["type"], type);
}

void expect_has_keys(const Json &j, std::initializer_list<const char *> keys) {
    for (const char *key : keys) EXPECT_TRUE(j.contains(key)) << "missing " << key;
}

TEST(JsonFormat, Allocate) {
    Json j = event_line(connect_allocate());
    expect_header(j, "allocate");
    EXPECT_EQ(j["ts"], kTs);
    EXPECT_EQ(j["how"], "connect_autobind");
    EXPECT_EQ(j["syscall"], "connect");
    EXPECT_EQ(j["proto"], "tcp");
    EXPECT_EQ(j["family"], "ipv4");
    EXPECT_EQ(j["pid"], 1234);
    EXPECT_EQ(j["tid"], 1240);
    EXPECT_EQ(j["comm"], "curl");
    EXPECT_FALSE(j.contains("comm_hex"));
    EXPECT_EQ(j["uid"], 1000);
    EXPECT_EQ(j["cgroup_id"], 7777);
    EXPECT_TRUE(j["cgroup"].is_null()) << "no path known";
    EXPECT_TRUE(j["container_id"].is_null());
    EXPECT_TRUE(j["container_runtime"].is_null());
    EXPECT_EQ(j["netns"], 4026531840u);
    EXPECT_EQ(j["local_addr"], "10.0.0.1");
    EXPECT_EQ(j["local_port"], 43210);
    EXPECT_EQ(j["remote_addr"], "192.168.1.2");
    EXPECT_EQ(j["remote_port"], 443);
    EXPECT_EQ(j["sock_cookie"], 0x1122334455667788ull);
    EXPECT_EQ(j["ephemeral"], true);
    EXPECT_FALSE(j.contains("errno"));
    EXPECT_FALSE(j.contains("error"));
}

TEST(JsonFormat, AllocateFailedNamesTheErrno) {
    const std::pair<int, const char *> cases[] = {
        {EADDRNOTAVAIL, "EADDRNOTAVAIL"},
        {EADDRINUSE, "EADDRINUSE"},
        {EAGAIN, "EAGAIN"},
        {4000, "E4000"},  // no name in the C library
    };
    for (const auto &[error, name] : cases) {
        SCOPED_TRACE(name);
        Json j = event_line(failed_bind(error));
        expect_header(j, "allocate_failed");
        EXPECT_EQ(j["ts"], kTs);
        EXPECT_EQ(j["errno"], error);
        EXPECT_EQ(j["error"], name);
        EXPECT_EQ(j["how"], "bind_ephemeral");
        EXPECT_EQ(j["syscall"], "bind");
        EXPECT_EQ(j["proto"], "udp");
        EXPECT_EQ(j["local_addr"], "0.0.0.0");
        EXPECT_EQ(j["local_port"], 0);
        EXPECT_EQ(j["ephemeral"], false);
        EXPECT_TRUE(j["remote_addr"].is_null());
        EXPECT_TRUE(j["remote_port"].is_null());
    }
}

TEST(JsonFormat, AllocateHasTheContractFields) {
    expect_has_keys(event_line(connect_allocate()),
                    {"how", "syscall", "proto", "family", "pid", "tid", "comm", "uid", "cgroup_id",
                     "cgroup", "container_id", "container_runtime", "netns", "local_addr",
                     "local_port", "remote_addr", "remote_port", "ephemeral"});
}

TEST(JsonFormat, AllocateInAContainerNamesIt) {
    AllocateEvent e = connect_allocate();
    e.task.cgroup_path = kDockerCgroup;
    Json j = event_line(e);
    EXPECT_EQ(j["cgroup_id"], 7777);
    EXPECT_EQ(j["cgroup"], kDockerCgroup);
    EXPECT_FALSE(j.contains("cgroup_hex"));
    EXPECT_EQ(j["container_id"], kContainerId);
    EXPECT_EQ(j["container_runtime"], "docker");
    auto keys = keys_of(j);
    auto at = std::find(keys.begin(), keys.end(), "cgroup_id");
    ASSERT_LE(at + 4, keys.end());
    EXPECT_EQ(
        std::vector<std::string>(at, at + 4),
        (std::vector<std::string>{"cgroup_id", "cgroup", "container_id", "container_runtime"}));
}

TEST(JsonFormat, HostCgroupHasAPathButNoContainer) {
    for (const char *path : {"/", "/user.slice/user-1000.slice/session-3.scope"}) {
        AllocateEvent e = failed_bind(EADDRINUSE);
        e.task.cgroup_path = path;
        Json j = event_line(e);
        EXPECT_EQ(j["cgroup"], path);
        EXPECT_TRUE(j["container_id"].is_null()) << path;
        EXPECT_TRUE(j["container_runtime"].is_null()) << path;
    }
}

TEST(JsonFormat, CgroupThatIsNotUtf8IsEscapedAndGivenInHex) {
    AllocateEvent e = connect_allocate();
    e.task.cgroup_path = "/odd\xff\n.slice";
    std::string line = json_line(to_json(e, time_base()));
    expect_one_line(line);
    Json j;
    ASSERT_NO_THROW(j = Json::parse(line));
    EXPECT_EQ(j["cgroup"], "/odd\\xff\n.slice");
    EXPECT_EQ(j["cgroup_hex"], "2f6f6464ff0a2e736c696365");
    EXPECT_TRUE(j["container_id"].is_null());
}

TEST(JsonFormat, ReleaseCarriesTheOwnersContainer) {
    ReleaseEvent e = ipv6_release(ReleaseReason::socket_closed);
    e.owner.cgroup_path = kDockerCgroup;
    Json j = event_line(e);
    EXPECT_EQ(j["cgroup"], kDockerCgroup);
    EXPECT_EQ(j["container_id"], kContainerId);
    EXPECT_EQ(j["container_runtime"], "docker");
}

TEST(JsonFormat, Release) {
    Json j = event_line(ipv6_release(ReleaseReason::time_wait));
    expect_header(j, "release");
    EXPECT_EQ(j["ts"], kTs);
    EXPECT_EQ(j["how"], "bind");
    EXPECT_EQ(j["proto"], "tcp");
    EXPECT_EQ(j["family"], "ipv6");
    EXPECT_EQ(j["netns"], 4026531840u);
    EXPECT_EQ(j["local_addr"], "2001:db8::1");
    EXPECT_EQ(j["local_port"], 8080);
    EXPECT_TRUE(j["remote_addr"].is_null());
    EXPECT_TRUE(j["remote_port"].is_null());
    EXPECT_EQ(j["pid"], 1234);
    EXPECT_EQ(j["comm"], "nginx");
    EXPECT_DOUBLE_EQ(j["held_ms"].get<double>(), 2500.123);  // microsecond resolution
    EXPECT_EQ(j["reason"], "time_wait");
    EXPECT_EQ(j["time_wait"], true);
}

TEST(JsonFormat, ReleaseWithUnknownOwnerHasNulls) {
    ReleaseEvent e = ipv6_release(ReleaseReason::tcp_closed);
    e.owner_known = false;
    Json j = event_line(e);
    expect_header(j, "release");
    for (const char *key : {"how", "pid", "comm", "uid", "cgroup_id", "cgroup", "container_id",
                            "container_runtime", "held_ms"})
        EXPECT_TRUE(j.contains(key) && j[key].is_null()) << key;
    EXPECT_EQ(j["local_port"], 8080);
    EXPECT_EQ(j["sock_cookie"], 99);
    EXPECT_EQ(j["reason"], "tcp_closed");
}

TEST(JsonFormat, ReleaseReasons) {
    const std::pair<ReleaseReason, const char *> cases[] = {
        {ReleaseReason::socket_closed, "socket_closed"},
        {ReleaseReason::tcp_closed, "tcp_closed"},
        {ReleaseReason::time_wait, "time_wait"},
        {ReleaseReason::disconnect, "disconnect"},
    };
    for (const auto &[reason, name] : cases) {
        Json j = event_line(ipv6_release(reason));
        EXPECT_EQ(j["reason"], name);
        EXPECT_EQ(j["time_wait"], reason == ReleaseReason::time_wait) << name;
    }
}

TEST(JsonFormat, ReleaseWithRemote) {
    ReleaseEvent e = ipv6_release(ReleaseReason::tcp_closed);
    e.sock.remote_addr = ipv6_doc(2);
    e.sock.remote_port = 443;
    Json j = event_line(e);
    EXPECT_EQ(j["remote_addr"], "2001:db8::2");
    EXPECT_EQ(j["remote_port"], 443);
}

TEST(JsonFormat, Ready) {
    ReadyInfo ready;
    ready.realtime_ns = kRealtimeNs;
    ready.version = "0.1.0";
    ready.revision = "664ae308ff13-dirty";
    ready.kernel_release = "6.8.0-49-generic";
    ready.hooks = {"tp_btf/sys_exit_bind", "cgroup/post_bind4"};
    ready.agent_pid = 4321;
    ready.reach = {true, false, true};
    Json j = parse_line(json_line(to_json(ready)));
    expect_header(j, "ready");
    EXPECT_EQ(j["ts"], kTs);
    EXPECT_EQ(j["version"], "0.1.0");
    EXPECT_EQ(j["revision"], "664ae308ff13-dirty");
    EXPECT_EQ(j["kernel"], "6.8.0-49-generic");
    EXPECT_EQ(j["abi_version"], PW_ABI_VERSION);
    EXPECT_EQ(j["pid"], 4321);
    EXPECT_EQ(j["hooks"], Json::array({"tp_btf/sys_exit_bind", "cgroup/post_bind4"}));
    EXPECT_EQ(j["reach"],
              (Json{{"every_netns", true}, {"every_owner", false}, {"every_cgroup", true}}));
}

TEST(JsonFormat, Stats) {
    StatsSnapshot stats;
    stats.realtime_ns = kRealtimeNs;
    stats.uptime_s = 12.5;
    stats.final = true;
    stats.decoded = 11;
    stats.decode_errors = 2;
    stats.kernel.emitted[PW_RECORD_ALLOCATE][PW_HOW_BIND] = 3;
    stats.kernel.emitted[PW_RECORD_ALLOCATE][PW_HOW_CONNECT_AUTOBIND] = 4;
    stats.kernel.lost[PW_RECORD_ALLOCATE][PW_HOW_CONNECT_AUTOBIND] = 2;
    stats.kernel.lost[PW_RECORD_ALLOCATE_FAILED][PW_HOW_SENDTO_AUTOBIND] = 7;
    stats.kernel.emitted[PW_RECORD_RELEASE][PW_HOW_BIND_EPHEMERAL] = 5;
    stats.kernel.lost[PW_RECORD_RELEASE][PW_HOW_LISTEN_AUTOBIND] = 1;
    stats.kernel.untracked = 6;
    stats.kernel.pending_overflow = 8;
    stats.owners_forgotten = 9;
    stats.reconcile = {3, 40, 5, 6, 123.456, 7.04};

    Json j = parse_line(json_line(to_json(stats)));
    expect_header(j, "stats");
    EXPECT_EQ(j["ts"], kTs);
    EXPECT_EQ(j["final"], true);
    EXPECT_DOUBLE_EQ(j["uptime_s"].get<double>(), 12.5);
    EXPECT_EQ(j["lost_total"], 10);
    EXPECT_EQ(j["untracked"], 6);
    EXPECT_EQ(j["pending_overflow"], 8);
    EXPECT_EQ(j["decoded"], 11);
    EXPECT_EQ(j["decode_errors"], 2);
    EXPECT_EQ(j["owners_forgotten"], 9);
    EXPECT_EQ(j["reconciliation"],
              Json::parse(R"({"runs":3,"added":40,"removed":5,"time_wait":6,"baseline_ms":123.5,)"
                          R"("last_ms":7.0})"));

    const Json &events = j["events"];
    EXPECT_EQ(keys_of(events),
              (std::vector<std::string>{"allocate", "allocate_failed", "release"}));
    const std::vector<std::string> hows = {"bind", "bind_ephemeral", "listen_autobind",
                                           "connect_autobind", "sendto_autobind"};
    for (const auto &kind : keys_of(events)) {
        EXPECT_EQ(keys_of(events[kind]["seen_by_how"]), hows) << kind;
        EXPECT_EQ(keys_of(events[kind]["lost_by_how"]), hows) << kind;
    }
    EXPECT_EQ(events["allocate"]["seen"], 7);
    EXPECT_EQ(events["allocate"]["lost"], 2);
    EXPECT_EQ(events["allocate"]["seen_by_how"]["bind"], 3);
    EXPECT_EQ(events["allocate"]["seen_by_how"]["connect_autobind"], 4);
    EXPECT_EQ(events["allocate"]["seen_by_how"]["sendto_autobind"], 0);
    EXPECT_EQ(events["allocate"]["lost_by_how"]["connect_autobind"], 2);
    EXPECT_EQ(events["allocate_failed"]["seen"], 0);
    EXPECT_EQ(events["allocate_failed"]["lost"], 7);
    EXPECT_EQ(events["allocate_failed"]["lost_by_how"]["sendto_autobind"], 7);
    EXPECT_EQ(events["release"]["seen"], 5);
    EXPECT_EQ(events["release"]["lost"], 1);
    EXPECT_EQ(events["release"]["seen_by_how"]["bind_ephemeral"], 5);
    EXPECT_EQ(events["release"]["lost_by_how"]["listen_autobind"], 1);
}

TEST(JsonFormat, StatsSayWhyTheCountersAreTheLastReading) {
    StatsSnapshot stats;
    stats.kernel.lost[PW_RECORD_ALLOCATE][PW_HOW_BIND] = 3;
    EXPECT_FALSE(parse_line(json_line(to_json(stats))).contains("counters_error"));
    stats.counters_error = "cannot read the event counters: Bad file descriptor";
    Json j = parse_line(json_line(to_json(stats)));
    EXPECT_EQ(j["counters_error"], stats.counters_error);
    EXPECT_EQ(j["lost_total"], 3);
}

TEST(JsonFormat, CommThatIsNotUtf8IsEscapedAndGivenInHex) {
    struct Case {
        std::string raw, comm, hex;
    };
    const Case cases[] = {
        {"a\xff\xfe", "a\\xff\\xfe", "61fffe"},
        {"\xe2\x82", "\\xe2\\x82", "e282"},  // truncated multibyte
        {"x\xc0\x80y", "x\\xc0\\x80y", "78c08079"},
    };
    for (const auto &c : cases) {
        SCOPED_TRACE(c.hex);
        std::string line = json_line(connect_allocate(c.raw), time_base());
        expect_one_line(line);
        nlohmann::json j;
        ASSERT_NO_THROW(j = nlohmann::json::parse(line));
        EXPECT_EQ(j["comm"], c.comm);
        EXPECT_EQ(j["comm_hex"], c.hex);

        std::string release = json_line(
            [&] {
                ReleaseEvent e = ipv6_release(ReleaseReason::socket_closed);
                e.owner.comm = c.raw;
                return Event{e};
            }(),
            time_base());
        ASSERT_NO_THROW(j = nlohmann::json::parse(release));
        EXPECT_EQ(j["comm"], c.comm);
        EXPECT_EQ(j["comm_hex"], c.hex);
    }
}

TEST(JsonFormat, Utf8CommIsKeptAsIs) {
    Json j = event_line(connect_allocate("caf\xc3\xa9"));
    EXPECT_EQ(j["comm"], "caf\xc3\xa9");
    EXPECT_FALSE(j.contains("comm_hex"));
}

TEST(JsonFormat, ControlCharactersInCommStayOnOneLine) {
    Json j = event_line(connect_allocate("x\ny\r\tz"));
    EXPECT_EQ(j["comm"], "x\ny\r\tz");
}

// Every event kind, every optional field both ways, every byte value in comm and cgroup, held
// times from 0 to years: the streamed line is byte for byte the tree's.
std::vector<Event> events_of_every_shape() {
    std::vector<Event> events;
    std::string every_byte;
    for (int byte = 1; byte < 256; ++byte) every_byte += static_cast<char>(byte);
    for (const std::string &text : {std::string("curl"), std::string("caf\xc3\xa9 \"q\" \\"),
                                    every_byte, std::string(1, '\0') + "nul"}) {
        AllocateEvent allocate = connect_allocate(text);
        allocate.task.cgroup_path = "/" + text;
        events.push_back(allocate);
        allocate.task.cgroup_path = kDockerCgroup;
        allocate.sock.family = Family::ipv6;
        allocate.sock.local_addr = ipv6_doc(7);
        allocate.sock.remote_addr = ipv6_doc(9);
        events.push_back(allocate);
        AllocateEvent failed = failed_bind(EADDRINUSE);
        failed.task.comm = text;
        events.push_back(failed);
        failed.error = 4095;  // no name for it
        events.push_back(failed);
        for (std::uint64_t held_ns :
             {0ull, 999ull, 1'000ull, 2'500'123'456ull, 86'400'000'000'000ull, ~0ull}) {
            ReleaseEvent release = ipv6_release(ReleaseReason::time_wait);
            release.owner.comm = text;
            release.owner.cgroup_path = text;
            release.held_ns = held_ns;
            events.push_back(release);
        }
        ReleaseEvent unknown = ipv6_release(ReleaseReason::tcp_closed);
        unknown.owner_known = false;
        events.push_back(unknown);
    }
    return events;
}

TEST(JsonFormat, TheStreamedEventLineIsTheTreesByteForByte) {
    for (const Event &event : events_of_every_shape()) {
        std::string tree = json_line(to_json(event, time_base()));
        EXPECT_EQ(json_line(event, time_base()), tree);
    }
}

TEST(JsonFormat, AWarningNamesTheContainersOfTheFailureAndTheTopProcesses) {
    const std::string id(64, 'c');
    Warning warning;
    warning.boot_ns = kBootNs;
    warning.level = WarningLevel::critical;
    warning.usage.key.kind = ScopeKind::udp;
    warning.usage.proto = Proto::udp;
    warning.usage.top_processes = {{1234, "dnsd", 9, "/kubepods/besteffort/pod1/" + id},
                                   {77, "host", 1, ""}};
    AllocateEvent failure = failed_bind(EAGAIN);
    failure.task.cgroup_path = "/kubepods/besteffort/pod1/" + id;
    warning.failure = failure;
    Json j = to_json(warning, time_base());
    EXPECT_EQ(j["failed"]["container_id"], id);
    EXPECT_EQ(j["failed"]["container_runtime"], "kubepods");
    EXPECT_EQ(j["failed"]["error"], "EAGAIN");
    ASSERT_EQ(j["top_processes"].size(), 2u);
    EXPECT_EQ(j["top_processes"][0]["cgroup"], "/kubepods/besteffort/pod1/" + id);
    EXPECT_EQ(j["top_processes"][0]["container_id"], id);
    EXPECT_TRUE(j["top_processes"][1]["cgroup"].is_null());
    EXPECT_TRUE(j["top_processes"][1]["container_id"].is_null());
}

TEST(JsonFormat, EveryLineIsOneLine) {
    const Event events[] = {
        connect_allocate(),
        failed_bind(EADDRINUSE),
        ipv6_release(ReleaseReason::time_wait),
        connect_allocate("\n\n\xff"),
    };
    for (const auto &e : events) expect_one_line(json_line(to_json(e, time_base())));
    expect_one_line(json_line(to_json(ReadyInfo{})));
    expect_one_line(json_line(to_json(StatsSnapshot{})));
}

}  // namespace
}  // namespace portwatch
