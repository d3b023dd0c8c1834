// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <cerrno>
#include <string>

#include <gtest/gtest.h>

#include "sample_events.h"
#include "output/text_lines.h"

namespace portwatch {
namespace {

using namespace portwatch::testing;

void expect_contains(const std::string &line, std::initializer_list<const char *> parts) {
    for (const char *part : parts)
        EXPECT_NE(line.find(part), std::string::npos) << part << " in " << line;
}

TEST(TextFormat, Allocate) {
    std::string line = text_line(connect_allocate(), time_base());
    expect_one_line(line);
    EXPECT_EQ(line.rfind("10:00:00.123456 ", 0), 0u) << line;
    expect_contains(
        line, {" allocate ", " connect_autobind ", " connect ", " tcp4 ", " 1234 ", " 1240 ",
               " curl ", " 4026531840 ", " 10.0.0.1:43210 ", " 192.168.1.2:443 ", " ephemeral"});
    EXPECT_EQ(line.find("FAILED"), std::string::npos);
}

// The container is the last word of DETAIL, after the words of the event's fields; the exact
// bytes of whole lines are held by event_lines_golden_test.cpp.
TEST(TextFormat, ContainerGoesLastAsItsShortId) {
    std::size_t detail_column = text_header().find("DETAIL");
    AllocateEvent allocate = connect_allocate();
    allocate.task.cgroup_path = kDockerCgroup;
    std::string line = text_line(allocate, time_base());
    expect_one_line(line);
    expect_contains(line, {" curl ", " 192.168.1.2:443 ", " ephemeral "});
    EXPECT_TRUE(line.ends_with(" container=4a37f6d3bf5d\n")) << line;

    AllocateEvent fixed = connect_allocate();
    fixed.ephemeral = false;
    fixed.task.cgroup_path = kDockerCgroup;
    line = text_line(fixed, time_base());
    EXPECT_TRUE(line.ends_with(" container=4a37f6d3bf5d\n")) << line;
    EXPECT_GE(line.find("container="), detail_column) << line;

    ReleaseEvent release = ipv6_release(ReleaseReason::time_wait);
    release.owner.cgroup_path = kDockerCgroup;
    line = text_line(release, time_base());
    expect_contains(line, {"held 2500.123ms time_wait "});
    EXPECT_TRUE(line.ends_with(" container=4a37f6d3bf5d\n")) << line;
}

TEST(TextFormat, NoContainerNoMention) {
    AllocateEvent e = connect_allocate();
    for (const char *path : {"", "/", "/user.slice/user-1000.slice/session-3.scope"}) {
        e.task.cgroup_path = path;
        std::string line = text_line(e, time_base());
        EXPECT_EQ(line.find("container"), std::string::npos) << line;
        expect_contains(line, {" ephemeral"});
    }
}

TEST(TextFormat, FailedAllocationShowsTheErrnoName) {
    std::string line = text_line(failed_bind(EADDRNOTAVAIL), time_base());
    expect_one_line(line);
    expect_contains(line, {" FAILED ", " bind_ephemeral ", " bind ", " udp4 ", " dnsd ",
                           " 0.0.0.0:0 ", " - ", " EADDRNOTAVAIL"});
}

TEST(TextFormat, Release) {
    std::string line = text_line(ipv6_release(ReleaseReason::time_wait), time_base());
    expect_one_line(line);
    EXPECT_EQ(line.rfind("10:00:00.123456 ", 0), 0u) << line;
    expect_contains(line, {" release ", " bind ", " tcp6 ", " nginx ", " [2001:db8::1]:8080 ",
                           " held 2500.123ms time_wait"});
}

TEST(TextFormat, ReleaseWithUnknownOwnerShowsDashes) {
    ReleaseEvent e = ipv6_release(ReleaseReason::tcp_closed);
    e.owner_known = false;
    std::string line = text_line(e, time_base());
    expect_one_line(line);
    expect_contains(line, {" release ", " [2001:db8::1]:8080 ", "owner unknown tcp_closed\n"});
    EXPECT_EQ(line.find("nginx"), std::string::npos) << line;
}

TEST(TextFormat, CommWithControlsStaysOnOneLine) {
    for (const char *comm : {"x\ny", "\n", "a\r\n\x1b", "\xff\n"}) {
        std::string line = text_line(connect_allocate(comm), time_base());
        expect_one_line(line);
        ReleaseEvent release = ipv6_release(ReleaseReason::socket_closed);
        release.owner.comm = comm;
        expect_one_line(text_line(release, time_base()));
    }
    expect_contains(text_line(connect_allocate("x\ny"), time_base()), {" x\\x0ay "});
}

TEST(TextFormat, AnEscapedCommLongerThanItsColumnDoesNotShiftTheNextOnes) {
    std::string plain = text_line(connect_allocate("curl"), time_base());
    for (const char *comm : {"\x1b]0;pwned\x07", "\xc2\x9b\xc2\x9b\xc2\x9b\xc2\x9b\xc2\x9b",
                             "\xe2\x80\xae"
                             "evil-process-name"}) {
        std::string line = text_line(connect_allocate(comm), time_base());
        std::size_t netns_at = line.find(" 4026531840 ");
        ASSERT_NE(netns_at, std::string::npos) << line;
        EXPECT_EQ(netns_at, plain.find(" 4026531840 ")) << line;
    }
}

TEST(TextFormat, WidestRowStillEndsTheLine) {
    IpAddress wide;
    wide.family = Family::ipv6;
    wide.bytes.fill(0xff);
    ReleaseEvent e = ipv6_release(ReleaseReason::socket_closed);
    e.owner.comm = std::string(16, '\x01');  // 16 bytes, each printed as \x01
    e.owner.pid = e.owner.tid = 4294967295u;
    e.sock.netns = 4294967295u;
    e.sock.local_addr = e.sock.remote_addr = wide;
    e.sock.local_port = e.sock.remote_port = 65535;
    e.held_ns = UINT64_MAX;
    e.owner.cgroup_path = kDockerCgroup;
    std::string line = text_line(e, time_base());
    expect_one_line(line);
    expect_contains(line, {"socket_closed container=4a37f6d3bf5d\n",
                           "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"});
}

TEST(TextFormat, HeaderNamesTheColumns) {
    std::string header = text_header();
    expect_one_line(header);
    EXPECT_EQ(header.rfind("TIME ", 0), 0u);
    expect_contains(header, {"EVENT", "HOW", "SYSCALL", "PROTO", "PID", "TID", "COMM", "NETNS",
                             "LOCAL", "REMOTE", "DETAIL"});
}

TEST(TextFormat, Ready) {
    ReadyInfo ready;
    ready.version = "0.1.0";
    ready.kernel_release = "6.8.0";
    ready.hooks = {"a", "b", "c"};
    ready.hook_set = "fexit";
    ready.hook_set_reason = "asked for (--hooks fexit)";
    EXPECT_EQ(text_line(ready),
              "# portwatch 0.1.0 ready (kernel 6.8.0); hooks (fexit, asked for (--hooks fexit)): "
              "a, b, c\n");
}

TEST(TextFormat, Stats) {
    StatsSnapshot stats;
    stats.final = true;
    stats.kernel.emitted[PW_RECORD_ALLOCATE][PW_HOW_BIND] = 3;
    stats.kernel.emitted[PW_RECORD_ALLOCATE][PW_HOW_SENDTO_AUTOBIND] = 4;
    stats.kernel.emitted[PW_RECORD_ALLOCATE_FAILED][PW_HOW_CONNECT_AUTOBIND] = 2;
    stats.kernel.emitted[PW_RECORD_RELEASE][PW_HOW_BIND_EPHEMERAL] = 5;
    stats.kernel.lost[PW_RECORD_RELEASE][PW_HOW_BIND] = 6;
    stats.kernel.lost[PW_RECORD_ALLOCATE][PW_HOW_BIND] = 1;
    stats.kernel.untracked = 8;
    stats.decode_errors = 9;
    EXPECT_EQ(text_line(stats),
              "# stats (final): allocate 7, failed 2, release 5; lost 7; untracked 8; decode "
              "errors 9\n");
    stats.final = false;
    EXPECT_EQ(text_line(stats).rfind("# stats: allocate 7,", 0), 0u);
    stats.counters_error = "cannot read the event counters: Bad file descriptor";
    EXPECT_EQ(text_line(stats),
              "# stats: allocate 7, failed 2, release 5; lost 7; untracked 8; decode errors 9; "
              "cannot read the event counters: Bad file descriptor\n");
}

}  // namespace
}  // namespace portwatch
