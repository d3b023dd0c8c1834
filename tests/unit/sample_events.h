// SPDX-License-Identifier: Apache-2.0
// Events, a time base and a one-line check shared by the formatter tests. Values are chosen so
// that every field differs from its neighbours and from its default.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <string>

#include "events/event.h"
#include "output/value_text.h"

namespace portwatch::testing {

// 2026-11-21T10:00:00Z is 1795255200 s after the epoch; 123456789 ns past it
// prints as .123456 (microseconds, truncated).
inline constexpr std::int64_t kRealtimeNs = 1'795'255'200'123'456'789;
inline constexpr std::uint64_t kBootNs = 5'000'000'000;
inline constexpr const char *kTs = "2026-11-21T10:00:00.123456Z";

// A formatted line: ends in exactly one '\n' and holds no other.
inline void expect_one_line(const std::string &line) {
    ASSERT_FALSE(line.empty());
    EXPECT_EQ(line.back(), '\n') << line;
    EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << line;
}

inline TimeBase time_base() {
    return TimeBase{kRealtimeNs - static_cast<std::int64_t>(kBootNs)};
}

inline IpAddress ipv4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
    IpAddress addr;
    addr.family = Family::ipv4;
    addr.bytes[0] = a;
    addr.bytes[1] = b;
    addr.bytes[2] = c;
    addr.bytes[3] = d;
    return addr;
}

// 2001:db8::<last>
inline IpAddress ipv6_doc(std::uint8_t last) {
    IpAddress addr;
    addr.family = Family::ipv6;
    addr.bytes[0] = 0x20;
    addr.bytes[1] = 0x01;
    addr.bytes[2] = 0x0d;
    addr.bytes[3] = 0xb8;
    addr.bytes[15] = last;
    return addr;
}

inline TaskInfo task(std::string comm) {
    TaskInfo t;
    t.pid = 1234;
    t.tid = 1240;
    t.uid = 1000;
    t.cgroup_id = 7777;
    t.comm = std::move(comm);
    return t;
}

inline constexpr const char *kContainerId =
    "4a37f6d3bf5dcb638ef7247564bea98d9724a0ba2eb0c6dd64efc5404c360646";
inline const std::string kDockerCgroup =
    std::string("/system.slice/docker-") + kContainerId + ".scope";

// TCP connect() from 10.0.0.1:43210 to 192.168.1.2:443, autobound.
inline AllocateEvent connect_allocate(std::string comm = "curl") {
    AllocateEvent e;
    e.boot_ns = kBootNs;
    e.sock.cookie = 0x1122334455667788ull;
    e.sock.netns = 4026531840u;
    e.sock.proto = Proto::tcp;
    e.sock.family = Family::ipv4;
    e.sock.local_addr = ipv4(10, 0, 0, 1);
    e.sock.local_port = 43210;
    e.sock.remote_addr = ipv4(192, 168, 1, 2);
    e.sock.remote_port = 443;
    e.task = task(std::move(comm));
    e.how = How::connect_autobind;
    e.syscall = Syscall::connect;
    e.ephemeral = true;
    return e;
}

// UDP bind() of 0.0.0.0:0 that failed: no remote, the kernel was to choose.
inline AllocateEvent failed_bind(int error) {
    AllocateEvent e;
    e.boot_ns = kBootNs;
    e.sock.cookie = 42;
    e.sock.netns = 4026532000u;
    e.sock.proto = Proto::udp;
    e.sock.family = Family::ipv4;
    e.task = task("dnsd");
    e.how = How::bind_ephemeral;
    e.syscall = Syscall::bind;
    e.error = error;
    return e;
}

// TCP [2001:db8::1]:8080 held 2500.123456 ms.
inline ReleaseEvent ipv6_release(ReleaseReason reason) {
    ReleaseEvent e;
    e.boot_ns = kBootNs;
    e.sock.cookie = 99;
    e.sock.netns = 4026531840u;
    e.sock.proto = Proto::tcp;
    e.sock.family = Family::ipv6;
    e.sock.local_addr = ipv6_doc(1);
    e.sock.local_port = 8080;
    e.sock.remote_addr.family = Family::ipv6;
    e.owner = task("nginx");
    e.how = How::bind;
    e.reason = reason;
    e.held_ns = 2'500'123'456;
    return e;
}

}  // namespace portwatch::testing
