// SPDX-License-Identifier: Apache-2.0
#include "model/netns_state.h"

#include <algorithm>
#include <utility>

namespace portwatch {

void PortCounts::add(std::uint16_t port, int delta, const NetnsPortConfig &config) {
    std::uint32_t &count = holders[port];
    bool was_held = count > 0;
    count = delta > 0 ? count + 1 : (count > 0 ? count - 1 : 0);
    bool is_held = count > 0;
    if (!is_held) holders.erase(port);
    if (was_held != is_held && config.is_ephemeral(port)) ephemeral += is_held ? 1 : -1;
}

// inet_csk_find_open_port() (bind(0), listen()) skips a port any TCP socket holds;
// __inet_hash_connect() skips the ones bind()-style sockets hold.
void NetnsState::hold_port(ScopeKind kind, Proto proto, std::uint16_t port, int delta) {
    if (proto == Proto::udp) {
        udp.add(port, delta, config);
        return;
    }
    tcp_any.add(port, delta, config);
    if (kind != ScopeKind::destination) tcp_bind.add(port, delta, config);
}

void NetnsState::reread(NetnsPortConfig new_config) {
    config = std::move(new_config);
    for (PortCounts *counts : {&tcp_any, &tcp_bind, &udp, &tcp_time_wait}) counts->recount(config);
}

// __inet_hash_connect() never hands out a port a bind()-style socket holds, so a socket
// on one (accepted from a listener since closed, in TIME_WAIT or not) is no connect()
// autobind: it shares that bind bucket, which stays as long as any socket on it.
bool NetnsState::bind_style_port(std::uint16_t port, std::uint64_t now_ns,
                                 std::uint64_t linger_ns) const {
    if (tcp_bind.holders.contains(port)) return true;
    auto released = bind_ports_released.find(port);
    return released != bind_ports_released.end() && released->second + linger_ns >= now_ns;
}

void NetnsState::forget_bind_ports_released(std::uint64_t now_ns, std::uint64_t linger_ns) {
    std::erase_if(bind_ports_released,
                  [&](const auto &entry) { return entry.second + linger_ns < now_ns; });
}

void PortCounts::recount(const NetnsPortConfig &config) {
    ephemeral = std::count_if(holders.begin(), holders.end(),
                              [&](const auto &entry) { return config.is_ephemeral(entry.first); });
}

}  // namespace portwatch
