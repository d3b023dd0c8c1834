// SPDX-License-Identifier: Apache-2.0
// The decoded, typed form of what the kernel side reports, and each event's field table
// (field_table.h): the JSON keys in their order, where the decoder copies each field from, what
// the text line adds. No libbpf, no kernel.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <variant>

#include "base/enum_names.h"
#include "events/abi.h"
#include "events/cgroup_path.h"
#include "events/field_table.h"

namespace portwatch {

enum class How { bind, bind_ephemeral, listen_autobind, connect_autobind, sendto_autobind };
enum class Syscall { bind, listen, connect, sendto, sendmsg, sendmmsg };
enum class Proto { tcp, udp };
enum class Family { ipv4, ipv6 };
enum class ReleaseReason { socket_closed, tcp_closed, time_wait, disconnect };

// Their names in the JSON and text output (docs/json.md) and on the command line.
inline constexpr EnumName<How> kHowNames[] = {{How::bind, "bind"},
                                              {How::bind_ephemeral, "bind_ephemeral"},
                                              {How::listen_autobind, "listen_autobind"},
                                              {How::connect_autobind, "connect_autobind"},
                                              {How::sendto_autobind, "sendto_autobind"}};
inline constexpr EnumName<Syscall> kSyscallNames[] = {
    {Syscall::bind, "bind"},     {Syscall::listen, "listen"},   {Syscall::connect, "connect"},
    {Syscall::sendto, "sendto"}, {Syscall::sendmsg, "sendmsg"}, {Syscall::sendmmsg, "sendmmsg"}};
inline constexpr EnumName<Proto> kProtoNames[] = {{Proto::tcp, "tcp"}, {Proto::udp, "udp"}};
// --family also takes 4 and 6.
inline constexpr EnumName<Family> kFamilyNames[] = {
    {Family::ipv4, "ipv4"}, {Family::ipv6, "ipv6"}, {Family::ipv4, "4"}, {Family::ipv6, "6"}};
inline constexpr EnumName<ReleaseReason> kReleaseReasonNames[] = {
    {ReleaseReason::socket_closed, "socket_closed"},
    {ReleaseReason::tcp_closed, "tcp_closed"},
    {ReleaseReason::time_wait, "time_wait"},
    {ReleaseReason::disconnect, "disconnect"}};

struct IpAddress {
    Family family = Family::ipv4;
    std::array<std::uint8_t, 16> bytes{};  // network order; IPv4 in the first 4

    bool is_unspecified() const {
        std::size_t length = family == Family::ipv4 ? 4 : 16;
        for (std::size_t i = 0; i < length; i++)
            if (bytes[i]) return false;
        return true;
    }
    bool operator==(const IpAddress &) const = default;
};

struct SocketInfo {
    std::uint64_t cookie = 0;
    std::uint32_t netns = 0;
    Proto proto = Proto::tcp;
    Family family = Family::ipv4;
    IpAddress local_addr;
    std::uint16_t local_port = 0;
    IpAddress remote_addr;
    std::uint16_t remote_port = 0;  // 0: no remote

    bool has_remote() const { return remote_port != 0; }
};

inline constexpr auto kSocketFields = std::tuple{
    Field{"proto", &SocketInfo::proto},
    Field{"family", &SocketInfo::family},
    Field{"netns", &SocketInfo::netns},
    Field{"local_addr", &SocketInfo::local_addr},
    Field{"local_port", &SocketInfo::local_port},
    Field{"remote_addr",
          [](const SocketInfo &sock) -> std::optional<IpAddress> {
              if (!sock.has_remote()) return std::nullopt;
              return sock.remote_addr;
          }},
    Field{"remote_port",
          [](const SocketInfo &sock) -> std::optional<std::uint16_t> {
              if (!sock.has_remote()) return std::nullopt;
              return sock.remote_port;
          }},
    Field{"sock_cookie", &SocketInfo::cookie},
};

// The cgroup's path and the container it shows.
inline constexpr auto kCgroupFields = std::tuple{
    Field{"cgroup",
          [](const CgroupPath &path) -> std::optional<RawText> {
              if (path.empty()) return std::nullopt;
              return RawText{path.text()};
          }},
    Field{"container_id",
          [](const CgroupPath &path) -> std::optional<std::string_view> {
              if (!path.container()) return std::nullopt;
              return path.container()->id;
          }},
    Field{"container_runtime",
          [](const CgroupPath &path) -> std::optional<std::string_view> {
              if (!path.container()) return std::nullopt;
              return path.container()->runtime;
          }},
};

struct TaskInfo {
    std::uint32_t pid = 0;
    std::uint32_t tid = 0;
    std::uint32_t uid = 0;
    std::uint64_t cgroup_id = 0;
    std::string comm;  // raw bytes as the process set them; may not be UTF-8
    // The path of cgroup_id under the cgroup2 root ("/": the root), raw bytes; "" when unknown,
    // with the container it shows. The kernel sends only the id: the enrichment step
    // (enrich/enricher.h) fills the path in, from a lookup outside the core.
    CgroupPath cgroup_path;
};

// The caller of an allocation; kOwnerFields: the owner of a released port (no tid).
inline constexpr auto kTaskFields = std::tuple{
    Field{"pid", &TaskInfo::pid},
    Field{"tid", &TaskInfo::tid},
    Field{"comm", [](const TaskInfo &task) { return RawText{task.comm}; }},
    Field{"uid", &TaskInfo::uid},
    Field{"cgroup_id", &TaskInfo::cgroup_id},
    Group{&TaskInfo::cgroup_path, kCgroupFields},
};
inline constexpr auto kOwnerFields = std::tuple{
    Field{"pid", &TaskInfo::pid},
    Field{"comm", [](const TaskInfo &task) { return RawText{task.comm}; }},
    Field{"uid", &TaskInfo::uid},
    Field{"cgroup_id", &TaskInfo::cgroup_id},
    Group{&TaskInfo::cgroup_path, kCgroupFields},
};

// allocate (error == 0) or allocate_failed (error = errno).
struct AllocateEvent {
    std::uint64_t boot_ns = 0;
    SocketInfo sock;
    TaskInfo task;
    How how = How::bind;
    Syscall syscall = Syscall::bind;
    bool ephemeral = false;
    int error = 0;

    bool failed() const { return error != 0; }
};

// After `type` and `ts`. The decoder checks what joins fields (a failure has an errno) and
// derives `ephemeral` for a failure (decoder.cpp).
inline constexpr auto kAllocateFields = std::tuple{
    Field{"how", &AllocateEvent::how, &pw_allocate_record::how},
    Field{"syscall", &AllocateEvent::syscall, &pw_allocate_record::syscall},
    Group{&AllocateEvent::sock, kSocketFields, &pw_allocate_record::sock},
    Group{&AllocateEvent::task, kTaskFields, &pw_allocate_record::task},
    Field{"ephemeral", &AllocateEvent::ephemeral, &pw_allocate_record::ephemeral},
    Copy{&AllocateEvent::error, &pw_allocate_record::error},
    Field{"errno",
          [](const AllocateEvent &event) {
              return IfSet<int>{event.failed(), event.error};
          }},
    Field{"error",
          [](const AllocateEvent &event) {
              return IfSet<ErrnoName>{event.failed(), ErrnoName{event.error}};
          }},
};

struct ReleaseEvent {
    std::uint64_t boot_ns = 0;
    SocketInfo sock;
    // owner, how and held_ns are only meaningful when owner_known: the kernel does
    // not remember who got a connect()-allocated TCP port (PortOwners joins that in),
    // and nobody knows for a socket whose allocation was not seen.
    bool owner_known = true;
    TaskInfo owner;  // the process that allocated the port
    How how = How::bind;
    ReleaseReason reason = ReleaseReason::socket_closed;
    std::uint64_t held_ns = 0;

    bool time_wait() const { return reason == ReleaseReason::time_wait; }
};

// After `type` and `ts`. The owner and `how` are decoded only where the kernel kept them.
inline constexpr auto kReleaseFields = std::tuple{
    Field{"how",
          [](const ReleaseEvent &event) -> std::optional<How> {
              if (!event.owner_known) return std::nullopt;
              return event.how;
          }},
    Group{&ReleaseEvent::sock, kSocketFields,
          [](const pw_release_record &record) { return record.held.sock; }},
    Group{[](const ReleaseEvent &event) { return event.owner_known ? &event.owner : nullptr; },
          kOwnerFields},
    Field{"held_ms",
          [](const ReleaseEvent &event) -> std::optional<double> {
              if (!event.owner_known) return std::nullopt;
              return static_cast<double>(event.held_ns / 1000) / 1000.0;  // whole microseconds
          }},
    Field{"reason", &ReleaseEvent::reason, &pw_release_record::reason},
    Field{"time_wait", &ReleaseEvent::time_wait},
};

using Event = std::variant<AllocateEvent, ReleaseEvent>;

}  // namespace portwatch
