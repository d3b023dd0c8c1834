// SPDX-License-Identifier: Apache-2.0
// What the model keeps per network namespace: its port settings and which ports its sockets
// hold, as each of the kernel's port choices sees them. PortModel's own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>

#include <absl/container/flat_hash_map.h>

#include "events/event.h"
#include "model/netns_ports.h"
#include "model/scope_key.h"

namespace portwatch {

// Ports held, with how many sockets (TIME_WAIT included) hold each, and how many
// distinct ones an automatic choice could otherwise have handed out (inside the range,
// not reserved): kept in step, recounted when the settings change.
struct PortCounts {
    absl::flat_hash_map<std::uint16_t, std::uint32_t> holders;
    std::size_t ephemeral = 0;

    void add(std::uint16_t port, int delta, const NetnsPortConfig &config);
    void recount(const NetnsPortConfig &config);
};

struct NetnsState {
    NetnsPortConfig config;
    PortCounts tcp_any;   // every TCP port: bind(0)/listen() skip them all
    PortCounts tcp_bind;  // bind()-style TCP ports: connect() skips these
    PortCounts udp;
    PortCounts tcp_time_wait;  // TCP ports TIME_WAIT sockets hold: the bind scope's share
    // bind()-style TCP ports given up, and when: sockets accepted on them stay
    std::unordered_map<std::uint16_t, std::uint64_t> bind_ports_released;
    // packets its NAT dropped for want of a free port (conntrack's insert_failed), since the
    // monitor started
    std::uint64_t nat_drops = 0;
    std::uint64_t nat_drops_said_ns = 0;  // when drops no full NAT scope explains were last said

    // One socket more (delta > 0) or fewer on `port`, of a scope of `kind`.
    void hold_port(ScopeKind kind, Proto proto, std::uint16_t port, int delta);
    // New settings: the counts of the ports an automatic choice could hand out follow them.
    void reread(NetnsPortConfig new_config);
    // Whether a bind()-style TCP socket holds the port, or gave it up within `linger_ns`.
    bool bind_style_port(std::uint16_t port, std::uint64_t now_ns, std::uint64_t linger_ns) const;
    // Forgets the bind()-style ports given up more than `linger_ns` before `now_ns`.
    void forget_bind_ports_released(std::uint64_t now_ns, std::uint64_t linger_ns);
};

}  // namespace portwatch
