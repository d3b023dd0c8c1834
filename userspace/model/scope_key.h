// SPDX-License-Identifier: Apache-2.0
// Which allocation scope a port is drawn from, and how full a scope may get before it warns.
#pragma once

#include <array>
#include <bit>
#include <compare>
#include <cstring>
#include <cstdint>
#include <tuple>

#include "events/event.h"
#include "model/causes.h"

namespace portwatch {

enum class WarningLevel { ok, warning, critical };
inline constexpr EnumName<WarningLevel> kWarningLevelNames[] = {
    {WarningLevel::ok, "ok"},
    {WarningLevel::warning, "warning"},
    {WarningLevel::critical, "critical"}};

// memcmp()'s order of two addresses' bytes, from two 8-byte loads each.
inline std::strong_ordering byte_order(const std::array<std::uint8_t, 16> &a,
                                       const std::array<std::uint8_t, 16> &b) {
    for (std::size_t half = 0; half < 16; half += 8) {
        std::uint64_t x, y;
        std::memcpy(&x, a.data() + half, 8);
        std::memcpy(&y, b.data() + half, 8);
        if constexpr (std::endian::native == std::endian::little) {
            x = __builtin_bswap64(x);
            y = __builtin_bswap64(y);
        }
        if (x != y) return x <=> y;
    }
    return std::strong_ordering::equal;
}

struct ScopeKey {
    ScopeKind kind = ScopeKind::bind;
    std::uint32_t netns = 0;
    IpAddress local_addr;   // destination: the source address; others: unspecified
    IpAddress remote_addr;  // destination only
    std::uint16_t remote_port = 0;
    Proto proto = Proto::tcp;  // nat only: the other kinds' transport is implied by the kind

    // Field by field, addresses as memcmp() orders them (scopes_ is searched on every event,
    // and std::array's <=> called memcmp() there: 8 % of the model's time).
    std::strong_ordering operator<=>(const ScopeKey &other) const {
        if (auto order = std::tie(kind, netns, local_addr.family) <=>
                         std::tie(other.kind, other.netns, other.local_addr.family);
            order != 0)
            return order;
        if (auto order = byte_order(local_addr.bytes, other.local_addr.bytes); order != 0)
            return order;
        if (auto order = remote_addr.family <=> other.remote_addr.family; order != 0) return order;
        if (auto order = byte_order(remote_addr.bytes, other.remote_addr.bytes); order != 0)
            return order;
        if (auto order = remote_port <=> other.remote_port; order != 0) return order;
        return proto <=> other.proto;
    }
    bool operator==(const ScopeKey &) const = default;
};

// The scope a socket's port was drawn from: bind and udp scopes are one per netns, whatever
// the family (one port table); a connect()/sendto() autobind's is its destination.
ScopeKey scope_of(const SocketInfo &sock, How how);
ScopeKind scope_kind_of(const SocketInfo &sock, How how);

// ::ffff:a.b.c.d is a.b.c.d to the port allocator: both families share one table.
IpAddress unmapped_ipv6(const IpAddress &addr);
// Inline for the common IPv4 case: the model unmaps both addresses of every event's scope.
inline IpAddress unmapped(const IpAddress &addr) {
    return addr.family == Family::ipv4 ? addr : unmapped_ipv6(addr);
}
bool is_loopback(const IpAddress &addr);

}  // namespace portwatch
