// SPDX-License-Identifier: Apache-2.0
#include "events/decoder.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <concepts>
#include <cstring>
#include <functional>
#include <type_traits>
#include <utility>

#include "events/abi.h"

namespace portwatch {
namespace {

template <typename Record>
Record copy_record(std::span<const std::uint8_t> bytes) {
    Record record;
    std::memcpy(&record, bytes.data(), sizeof(record));
    return record;
}

std::optional<Family> family_of(std::uint8_t af) {
    if (af == AF_INET) return Family::ipv4;
    if (af == AF_INET6) return Family::ipv6;
    return std::nullopt;
}

std::optional<Proto> proto_of(std::uint8_t proto) {
    if (proto == IPPROTO_TCP) return Proto::tcp;
    if (proto == IPPROTO_UDP) return Proto::udp;
    return std::nullopt;
}

// The C++ enums are the ABI's values from their first one on, in the same order.
static_assert(int(How::bind) == PW_HOW_BIND - PW_HOW_BIND &&
              int(How::sendto_autobind) == PW_HOW_SENDTO_AUTOBIND - PW_HOW_BIND &&
              PW_HOW_SENDTO_AUTOBIND + 1 == PW_HOW_COUNT);
static_assert(int(Syscall::bind) == PW_SYSCALL_BIND - PW_SYSCALL_BIND &&
              int(Syscall::sendmmsg) == PW_SYSCALL_SENDMMSG - PW_SYSCALL_BIND &&
              PW_SYSCALL_SENDMMSG + 1 == PW_SYSCALL_COUNT);
static_assert(int(ReleaseReason::socket_closed) == 0 &&
              int(ReleaseReason::tcp_closed) == PW_RELEASE_TCP_CLOSED - PW_RELEASE_SOCKET_CLOSED &&
              int(ReleaseReason::time_wait) == PW_RELEASE_TIME_WAIT - PW_RELEASE_SOCKET_CLOSED &&
              int(ReleaseReason::disconnect) == PW_RELEASE_DISCONNECT - PW_RELEASE_SOCKET_CLOSED);

std::optional<How> how_of(std::uint8_t how) {
    if (how < PW_HOW_BIND || how >= PW_HOW_COUNT) return std::nullopt;
    return static_cast<How>(how - PW_HOW_BIND);
}

std::optional<Syscall> syscall_of(std::uint8_t syscall) {
    if (syscall < PW_SYSCALL_BIND || syscall >= PW_SYSCALL_COUNT) return std::nullopt;
    return static_cast<Syscall>(syscall - PW_SYSCALL_BIND);
}

std::optional<ReleaseReason> reason_of(std::uint8_t reason) {
    if (reason < PW_RELEASE_SOCKET_CLOSED || reason > PW_RELEASE_DISCONNECT) return std::nullopt;
    return static_cast<ReleaseReason>(reason - PW_RELEASE_SOCKET_CLOSED);
}

IpAddress address_of(Family family, const __u8 (&raw)[PW_ADDR_LEN]) {
    IpAddress addr;
    addr.family = family;
    std::size_t length = family == Family::ipv4 ? 4 : PW_ADDR_LEN;
    std::memcpy(addr.bytes.data(), raw, length);
    return addr;
}

std::optional<SocketInfo> socket_of(const pw_socket &raw) {
    auto family = family_of(raw.family);
    auto proto = proto_of(raw.proto);
    if (!family || !proto) return std::nullopt;
    SocketInfo sock;
    sock.cookie = raw.cookie;
    sock.netns = raw.netns;
    sock.proto = *proto;
    sock.family = *family;
    sock.local_addr = address_of(*family, raw.local_addr);
    sock.local_port = raw.local_port;
    sock.remote_addr = address_of(*family, raw.remote_addr);
    sock.remote_port = raw.remote_port;
    return sock;
}

TaskInfo task_of(const pw_task &raw) {
    TaskInfo task;
    task.pid = raw.pid;
    task.tid = raw.tid;
    task.uid = raw.uid;
    task.cgroup_id = raw.cgroup_id;
    task.comm.assign(raw.comm, strnlen(raw.comm, sizeof(raw.comm)));
    return task;
}

Decoded failure(DecodeError error) {
    return Decoded{std::nullopt, error};
}

// A record's field as the event's type; nullopt when out of range.
template <class Value>
struct As {};

std::optional<How> decoded(As<How>, std::uint8_t raw) {
    return how_of(raw);
}
std::optional<Syscall> decoded(As<Syscall>, std::uint8_t raw) {
    return syscall_of(raw);
}
std::optional<ReleaseReason> decoded(As<ReleaseReason>, std::uint8_t raw) {
    return reason_of(raw);
}
std::optional<SocketInfo> decoded(As<SocketInfo>, const pw_socket &raw) {
    return socket_of(raw);
}
std::optional<TaskInfo> decoded(As<TaskInfo>, const pw_task &raw) {
    return task_of(raw);
}
std::optional<bool> decoded(As<bool>, std::uint8_t raw) {
    return raw != 0;
}
template <std::integral Value, std::integral Raw>
std::optional<Value> decoded(As<Value>, Raw raw) {
    if (!std::in_range<Value>(raw)) return std::nullopt;
    return static_cast<Value>(raw);
}

template <class Object, class Member>
Member member_type(Member Object::*);

// Fills every member of `event` its table takes from the record (field_table.h); false when
// one is out of range.
template <class Event, class Record, class Table>
bool copy_fields(Event &event, const Record &record, const Table &table) {
    return all_fields(table, [&](const auto &entry) {
        using Entry = std::remove_cvref_t<decltype(entry)>;
        if constexpr (!kFromRecord<Entry>) {
            return true;
        } else {
            using Value = decltype(member_type(entry.get));
            auto value = decoded(As<Value>{}, std::invoke(entry.raw, record));
            if (!value) return false;
            event.*entry.get = std::move(*value);
            return true;
        }
    });
}

Decoded decode_allocate(std::span<const std::uint8_t> bytes) {
    auto raw = copy_record<pw_allocate_record>(bytes);
    AllocateEvent event;
    event.boot_ns = raw.hdr.boot_ns;
    bool failed = raw.hdr.type == PW_RECORD_ALLOCATE_FAILED;
    if (!copy_fields(event, raw, kAllocateFields) || failed != event.failed() || event.error < 0)
        return failure(DecodeError::bad_field);
    // A failed automatic choice has no port (0) to look up in the range, but it was one
    // the range should have given.
    event.ephemeral = event.ephemeral || (failed && event.how != How::bind);
    return Decoded{Event{std::move(event)}, DecodeError::none};
}

Decoded decode_release(std::span<const std::uint8_t> bytes) {
    auto raw = copy_record<pw_release_record>(bytes);
    ReleaseEvent event;
    event.boot_ns = raw.hdr.boot_ns;
    if (!copy_fields(event, raw, kReleaseFields)) return failure(DecodeError::bad_field);
    event.owner_known = raw.held.how != PW_HOW_NONE;  // NONE: joined in user space
    if (!event.owner_known) return Decoded{Event{std::move(event)}, DecodeError::none};
    auto how = how_of(raw.held.how);
    if (!how) return failure(DecodeError::bad_field);
    event.owner = task_of(raw.held.owner);
    event.how = *how;
    event.held_ns = raw.hdr.boot_ns > raw.held.allocated_boot_ns
                        ? raw.hdr.boot_ns - raw.held.allocated_boot_ns
                        : 0;
    return Decoded{Event{std::move(event)}, DecodeError::none};
}

std::size_t record_size(std::uint16_t type) {
    switch (type) {
        case PW_RECORD_ALLOCATE:
        case PW_RECORD_ALLOCATE_FAILED:
            return sizeof(pw_allocate_record);
        case PW_RECORD_RELEASE:
            return sizeof(pw_release_record);
        default:
            return 0;
    }
}

}  // namespace

std::string_view name_of(DecodeError error) {
    return name_in(kDecodeErrorNames, error);
}

Decoded decode_record(std::span<const std::uint8_t> bytes) {
    if (bytes.size() < sizeof(pw_record_header)) return failure(DecodeError::too_short);
    auto header = copy_record<pw_record_header>(bytes);
    if (header.version != PW_ABI_VERSION) return failure(DecodeError::bad_version);
    std::size_t expected = record_size(header.type);
    if (expected == 0) return failure(DecodeError::unknown_type);
    if (bytes.size() < expected) return failure(DecodeError::too_short);
    if (header.size != expected || bytes.size() != expected)
        return failure(DecodeError::size_mismatch);
    if (header.type == PW_RECORD_RELEASE) return decode_release(bytes);
    return decode_allocate(bytes);
}

}  // namespace portwatch
