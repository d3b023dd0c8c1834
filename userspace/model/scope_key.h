// Which allocation scope a port is drawn from, and how full a scope may get before it warns.
#pragma once

#include <compare>
#include <cstdint>
#include <tuple>

#include "events/event.h"
#include "model/causes.h"

namespace portwatch {

enum class WarningLevel { ok, warning, critical };

struct ScopeKey {
    ScopeKind kind = ScopeKind::bind;
    std::uint32_t netns = 0;
    IpAddress local_addr;   // destination: the source address; others: unspecified
    IpAddress remote_addr;  // destination only
    std::uint16_t remote_port = 0;

    auto operator<=>(const ScopeKey &other) const {
        return std::tie(kind, netns, local_addr.family, local_addr.bytes, remote_addr.family,
                        remote_addr.bytes, remote_port) <=>
               std::tie(other.kind, other.netns, other.local_addr.family, other.local_addr.bytes,
                        other.remote_addr.family, other.remote_addr.bytes, other.remote_port);
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
