// SPDX-License-Identifier: Apache-2.0
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "events/abi.h"
#include "events/decoder.h"
#include "output/value_text.h"

namespace portwatch {
namespace {

template <typename Record>
std::vector<std::uint8_t> bytes_of(const Record &record) {
    std::vector<std::uint8_t> out(sizeof(record));
    std::memcpy(out.data(), &record, sizeof(record));
    return out;
}

void set_comm(char (&comm)[PW_COMM_LEN], const char *text) {
    std::memset(comm, 0, PW_COMM_LEN);
    std::memcpy(comm, text, std::min<std::size_t>(std::strlen(text), PW_COMM_LEN));
}

pw_socket ipv4_socket() {
    pw_socket sock{};
    sock.cookie = 0x1122334455667788ull;
    sock.netns = 4026531840u;
    sock.proto = IPPROTO_TCP;
    sock.family = AF_INET;
    sock.local_port = 43210;
    inet_pton(AF_INET, "10.0.0.1", sock.local_addr);
    inet_pton(AF_INET, "192.168.1.2", sock.remote_addr);
    sock.remote_port = 443;
    return sock;
}

pw_socket ipv6_socket() {
    pw_socket sock{};
    sock.cookie = 77;
    sock.netns = 4026532001u;
    sock.proto = IPPROTO_UDP;
    sock.family = AF_INET6;
    sock.local_port = 5353;
    inet_pton(AF_INET6, "2001:db8::1", sock.local_addr);
    inet_pton(AF_INET6, "fe80::2", sock.remote_addr);
    sock.remote_port = 53;
    return sock;
}

pw_task raw_task(const char *comm) {
    pw_task task{};
    task.cgroup_id = 7777;
    task.pid = 1234;
    task.tid = 1240;
    task.uid = 1000;
    set_comm(task.comm, comm);
    return task;
}

pw_allocate_record allocate_record(std::uint16_t type = PW_RECORD_ALLOCATE,
                                   std::int32_t error = 0) {
    pw_allocate_record r{};
    r.hdr.version = PW_ABI_VERSION;
    r.hdr.type = type;
    r.hdr.size = sizeof(r);
    r.hdr.boot_ns = 5'000'000'000;
    r.sock = ipv4_socket();
    r.task = raw_task("curl");
    r.error = error;
    r.how = PW_HOW_CONNECT_AUTOBIND;
    r.syscall = PW_SYSCALL_CONNECT;
    r.ephemeral = 1;
    return r;
}

pw_release_record release_record() {
    pw_release_record r{};
    r.hdr.version = PW_ABI_VERSION;
    r.hdr.type = PW_RECORD_RELEASE;
    r.hdr.size = sizeof(r);
    r.hdr.boot_ns = 3'500'000'000;
    r.held.allocated_boot_ns = 1'000'000'000;
    r.held.sock = ipv6_socket();
    r.held.owner = raw_task("nginx");
    r.held.how = PW_HOW_BIND_EPHEMERAL;
    r.reason = PW_RELEASE_TIME_WAIT;
    return r;
}

TEST(Decoder, GoodAllocateIpv4) {
    auto bytes = bytes_of(allocate_record());
    Decoded d = decode_record(bytes);
    ASSERT_EQ(d.error, DecodeError::none);
    ASSERT_TRUE(d.event.has_value());
    const auto *e = std::get_if<AllocateEvent>(&*d.event);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->boot_ns, 5'000'000'000u);
    EXPECT_FALSE(e->failed());
    EXPECT_EQ(e->error, 0);
    EXPECT_EQ(e->how, How::connect_autobind);
    EXPECT_EQ(e->syscall, Syscall::connect);
    EXPECT_TRUE(e->ephemeral);
    EXPECT_EQ(e->sock.cookie, 0x1122334455667788ull);
    EXPECT_EQ(e->sock.netns, 4026531840u);
    EXPECT_EQ(e->sock.proto, Proto::tcp);
    EXPECT_EQ(e->sock.family, Family::ipv4);
    EXPECT_EQ(e->sock.local_addr.family, Family::ipv4);
    EXPECT_EQ(to_string(e->sock.local_addr), "10.0.0.1");
    EXPECT_EQ(e->sock.local_port, 43210);
    EXPECT_EQ(to_string(e->sock.remote_addr), "192.168.1.2");
    EXPECT_EQ(e->sock.remote_port, 443);
    EXPECT_EQ(e->task.pid, 1234u);
    EXPECT_EQ(e->task.tid, 1240u);
    EXPECT_EQ(e->task.uid, 1000u);
    EXPECT_EQ(e->task.cgroup_id, 7777u);
    EXPECT_EQ(e->task.comm, "curl");
}

TEST(Decoder, GoodAllocateIpv6) {
    auto record = allocate_record();
    record.sock = ipv6_socket();
    record.how = PW_HOW_SENDTO_AUTOBIND;
    record.syscall = PW_SYSCALL_SENDMMSG;
    record.ephemeral = 0;
    Decoded d = decode_record(bytes_of(record));
    ASSERT_EQ(d.error, DecodeError::none);
    const auto &e = std::get<AllocateEvent>(*d.event);
    EXPECT_EQ(e.sock.family, Family::ipv6);
    EXPECT_EQ(e.sock.proto, Proto::udp);
    EXPECT_EQ(e.how, How::sendto_autobind);
    EXPECT_EQ(e.syscall, Syscall::sendmmsg);
    EXPECT_FALSE(e.ephemeral);
    EXPECT_EQ(to_string(e.sock.local_addr), "2001:db8::1");
    EXPECT_EQ(e.sock.local_port, 5353);
    EXPECT_EQ(to_string(e.sock.remote_addr), "fe80::2");
    EXPECT_EQ(e.sock.remote_port, 53);
}

TEST(Decoder, Ipv4IgnoresBytesPastTheFirstFour) {
    auto record = allocate_record();
    std::memset(record.sock.local_addr + 4, 0xAB, PW_ADDR_LEN - 4);
    Decoded d = decode_record(bytes_of(record));
    ASSERT_EQ(d.error, DecodeError::none);
    const auto &e = std::get<AllocateEvent>(*d.event);
    for (std::size_t i = 4; i < PW_ADDR_LEN; i++) EXPECT_EQ(e.sock.local_addr.bytes[i], 0) << i;
    EXPECT_EQ(to_string(e.sock.local_addr), "10.0.0.1");
}

TEST(Decoder, CommUsesAllSixteenBytesWithoutNul) {
    auto record = allocate_record();
    std::memcpy(record.task.comm, "0123456789abcdef", PW_COMM_LEN);
    Decoded d = decode_record(bytes_of(record));
    ASSERT_EQ(d.error, DecodeError::none);
    const auto &e = std::get<AllocateEvent>(*d.event);
    EXPECT_EQ(e.task.comm, "0123456789abcdef");
}

TEST(Decoder, GoodAllocateFailed) {
    auto record = allocate_record(PW_RECORD_ALLOCATE_FAILED, EADDRNOTAVAIL);
    record.sock.local_port = 0;
    record.ephemeral = 0;
    Decoded d = decode_record(bytes_of(record));
    ASSERT_EQ(d.error, DecodeError::none);
    const auto &e = std::get<AllocateEvent>(*d.event);
    EXPECT_TRUE(e.failed());
    EXPECT_EQ(e.error, EADDRNOTAVAIL);
    EXPECT_EQ(e.sock.local_port, 0);
    EXPECT_EQ(e.sock.remote_port, 443);
    EXPECT_EQ(e.task.comm, "curl");
    EXPECT_TRUE(e.ephemeral) << "the range failed to give a port";
}

TEST(Decoder, AFailedBindToAFixedPortIsEphemeralOnlyInTheRange) {
    auto record = allocate_record(PW_RECORD_ALLOCATE_FAILED, EADDRINUSE);
    record.how = PW_HOW_BIND;
    record.syscall = PW_SYSCALL_BIND;
    record.sock.local_port = 8080;
    record.ephemeral = 0;
    Decoded d = decode_record(bytes_of(record));
    ASSERT_EQ(d.error, DecodeError::none);
    EXPECT_FALSE(std::get<AllocateEvent>(*d.event).ephemeral);
}

TEST(Decoder, GoodRelease) {
    Decoded d = decode_record(bytes_of(release_record()));
    ASSERT_EQ(d.error, DecodeError::none);
    ASSERT_TRUE(d.event.has_value());
    const auto *e = std::get_if<ReleaseEvent>(&*d.event);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->boot_ns, 3'500'000'000u);
    EXPECT_EQ(e->held_ns, 2'500'000'000u);  // hdr.boot_ns - held.allocated_boot_ns
    EXPECT_EQ(e->reason, ReleaseReason::time_wait);
    EXPECT_TRUE(e->time_wait());
    EXPECT_EQ(e->how, How::bind_ephemeral);
    EXPECT_EQ(e->owner.comm, "nginx");
    EXPECT_EQ(e->owner.pid, 1234u);
    EXPECT_EQ(e->sock.family, Family::ipv6);
    EXPECT_EQ(to_string(e->sock.local_addr), "2001:db8::1");
    EXPECT_EQ(e->sock.local_port, 5353);
    EXPECT_EQ(e->sock.cookie, 77u);
}

TEST(Decoder, ReleaseWithHowNoneHasNoOwnerYet) {
    auto record = release_record();
    record.held.how = PW_HOW_NONE;  // a connect()-allocated TCP port: joined in user space
    Decoded d = decode_record(bytes_of(record));
    ASSERT_EQ(d.error, DecodeError::none);
    const auto &e = std::get<ReleaseEvent>(*d.event);
    EXPECT_FALSE(e.owner_known);
    EXPECT_EQ(e.owner.pid, 0u);
    EXPECT_EQ(e.held_ns, 0u);
    EXPECT_EQ(e.sock.cookie, 77u);
    EXPECT_EQ(e.reason, ReleaseReason::time_wait);
}

TEST(Decoder, ReleaseReasons) {
    const std::pair<std::uint8_t, ReleaseReason> cases[] = {
        {PW_RELEASE_SOCKET_CLOSED, ReleaseReason::socket_closed},
        {PW_RELEASE_TCP_CLOSED, ReleaseReason::tcp_closed},
        {PW_RELEASE_TIME_WAIT, ReleaseReason::time_wait},
        {PW_RELEASE_DISCONNECT, ReleaseReason::disconnect},
    };
    for (const auto &[raw, reason] : cases) {
        auto record = release_record();
        record.reason = raw;
        Decoded d = decode_record(bytes_of(record));
        ASSERT_EQ(d.error, DecodeError::none) << int(raw);
        EXPECT_EQ(std::get<ReleaseEvent>(*d.event).reason, reason) << int(raw);
    }
}

TEST(Decoder, ReleaseBeforeAllocationClampsHeldToZero) {
    auto record = release_record();
    record.held.allocated_boot_ns = record.hdr.boot_ns + 1;
    Decoded d = decode_record(bytes_of(record));
    ASSERT_EQ(d.error, DecodeError::none);
    EXPECT_EQ(std::get<ReleaseEvent>(*d.event).held_ns, 0u);
}

struct BadCase {
    const char *name;
    std::function<std::vector<std::uint8_t>()> bytes;
    DecodeError expected;
};

template <typename Record>
std::function<std::vector<std::uint8_t>()> mutated(Record base,
                                                   std::function<void(Record &)> edit) {
    return [base, edit]() mutable {
        edit(base);
        return bytes_of(base);
    };
}

std::function<std::vector<std::uint8_t>()> prefix(std::vector<std::uint8_t> bytes, std::size_t n) {
    return [bytes, n] { return std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + n); };
}

using A = pw_allocate_record;
using R = pw_release_record;

TEST(Decoder, RejectsBadRecords) {
    const auto allocate = bytes_of(allocate_record());
    const auto release = bytes_of(release_record());
    const BadCase cases[] = {
        {"empty", [] { return std::vector<std::uint8_t>{}; }, DecodeError::too_short},
        {"shorter than header", prefix(allocate, sizeof(pw_record_header) - 1),
         DecodeError::too_short},
        {"header only", prefix(allocate, sizeof(pw_record_header)), DecodeError::too_short},
        {"allocate truncated", prefix(allocate, sizeof(A) - 1), DecodeError::too_short},
        {"release truncated to allocate size", prefix(release, sizeof(A)), DecodeError::too_short},
        {"release truncated", prefix(release, sizeof(R) - 1), DecodeError::too_short},
        {"version 0", mutated<A>(allocate_record(), [](A &r) { r.hdr.version = 0; }),
         DecodeError::bad_version},
        {"previous version",
         mutated<A>(allocate_record(), [](A &r) { r.hdr.version = PW_ABI_VERSION - 1; }),
         DecodeError::bad_version},
        {"next version",
         mutated<A>(allocate_record(), [](A &r) { r.hdr.version = PW_ABI_VERSION + 1; }),
         DecodeError::bad_version},
        {"size one short", mutated<A>(allocate_record(), [](A &r) { r.hdr.size = sizeof(A) - 1; }),
         DecodeError::size_mismatch},
        {"size of another type",
         mutated<A>(allocate_record(), [](A &r) { r.hdr.size = sizeof(R); }),
         DecodeError::size_mismatch},
        {"release size 0", mutated<R>(release_record(), [](R &r) { r.hdr.size = 0; }),
         DecodeError::size_mismatch},
        {"type 0", mutated<A>(allocate_record(), [](A &r) { r.hdr.type = 0; }),
         DecodeError::unknown_type},
        {"type count",
         mutated<A>(allocate_record(), [](A &r) { r.hdr.type = PW_RECORD_TYPE_COUNT; }),
         DecodeError::unknown_type},
        {"type 99", mutated<A>(allocate_record(), [](A &r) { r.hdr.type = 99; }),
         DecodeError::unknown_type},
        {"family 99", mutated<A>(allocate_record(), [](A &r) { r.sock.family = 99; }),
         DecodeError::bad_field},
        {"proto 99", mutated<A>(allocate_record(), [](A &r) { r.sock.proto = 99; }),
         DecodeError::bad_field},
        {"how none", mutated<A>(allocate_record(), [](A &r) { r.how = PW_HOW_NONE; }),
         DecodeError::bad_field},
        {"how count", mutated<A>(allocate_record(), [](A &r) { r.how = PW_HOW_COUNT; }),
         DecodeError::bad_field},
        {"how 200", mutated<A>(allocate_record(), [](A &r) { r.how = 200; }),
         DecodeError::bad_field},
        {"syscall none", mutated<A>(allocate_record(), [](A &r) { r.syscall = PW_SYSCALL_NONE; }),
         DecodeError::bad_field},
        {"syscall count", mutated<A>(allocate_record(), [](A &r) { r.syscall = PW_SYSCALL_COUNT; }),
         DecodeError::bad_field},
        {"failed with error 0",
         mutated<A>(allocate_record(PW_RECORD_ALLOCATE_FAILED, 0), [](A &) {}),
         DecodeError::bad_field},
        {"allocate with error",
         mutated<A>(allocate_record(PW_RECORD_ALLOCATE, EADDRINUSE), [](A &) {}),
         DecodeError::bad_field},
        {"failed with negative error",
         mutated<A>(allocate_record(PW_RECORD_ALLOCATE_FAILED, -EADDRINUSE), [](A &) {}),
         DecodeError::bad_field},
        {"release family 99", mutated<R>(release_record(), [](R &r) { r.held.sock.family = 99; }),
         DecodeError::bad_field},
        {"release proto 99", mutated<R>(release_record(), [](R &r) { r.held.sock.proto = 99; }),
         DecodeError::bad_field},
        {"release how count", mutated<R>(release_record(), [](R &r) { r.held.how = PW_HOW_COUNT; }),
         DecodeError::bad_field},
        {"release reason 0", mutated<R>(release_record(), [](R &r) { r.reason = 0; }),
         DecodeError::bad_field},
        {"release reason 5", mutated<R>(release_record(), [](R &r) { r.reason = 5; }),
         DecodeError::bad_field},
    };
    for (const auto &c : cases) {
        SCOPED_TRACE(c.name);
        Decoded d = decode_record(c.bytes());
        EXPECT_EQ(name_of(d.error), name_of(c.expected));
        EXPECT_FALSE(d.event.has_value());
    }
}

// decoder.h documents size_mismatch as "header size disagrees with the bytes
// received"; a record followed by extra bytes is accepted instead.
TEST(Decoder, TrailingBytesAreASizeMismatch) {
    auto bytes = bytes_of(allocate_record());
    bytes.resize(bytes.size() + 8, 0);
    Decoded d = decode_record(bytes);
    EXPECT_EQ(name_of(d.error), name_of(DecodeError::size_mismatch));
    EXPECT_FALSE(d.event.has_value());
}

}  // namespace
}  // namespace portwatch
