// SPDX-License-Identifier: Apache-2.0
#include "model/scope_key.h"

#include <algorithm>
#include <array>

namespace portwatch {

IpAddress unmapped_ipv6(const IpAddress &addr) {
    bool mapped = std::all_of(addr.bytes.begin(), addr.bytes.begin() + 10,
                              [](std::uint8_t b) { return b == 0; }) &&
                  addr.bytes[10] == 0xff && addr.bytes[11] == 0xff;
    if (!mapped) return addr;
    IpAddress v4;
    std::copy(addr.bytes.begin() + 12, addr.bytes.end(), v4.bytes.begin());
    return v4;
}

bool is_loopback(const IpAddress &addr) {
    IpAddress plain = unmapped(addr);
    if (plain.family == Family::ipv4) return plain.bytes[0] == 127;
    static constexpr std::array<std::uint8_t, 16> kLoopback6{0, 0, 0, 0, 0, 0, 0, 0,
                                                             0, 0, 0, 0, 0, 0, 0, 1};
    return plain.bytes == kLoopback6;
}

ScopeKind scope_kind_of(const SocketInfo &sock, How how) {
    if (sock.proto == Proto::udp) return ScopeKind::udp;
    bool autobind = how == How::connect_autobind || how == How::sendto_autobind;
    return autobind ? ScopeKind::destination : ScopeKind::bind;
}

ScopeKey scope_of(const SocketInfo &sock, How how) {
    ScopeKey key;
    key.netns = sock.netns;
    key.kind = scope_kind_of(sock, how);
    if (key.kind == ScopeKind::destination) {
        key.local_addr = unmapped(sock.local_addr);
        key.remote_addr = unmapped(sock.remote_addr);
        key.remote_port = sock.remote_port;
    }
    return key;
}

}  // namespace portwatch
