// SPDX-License-Identifier: Apache-2.0
// What the model keeps per socket: a live one holding a port, a TIME_WAIT entry, and a
// process's share of a port. PortModel's own.
#pragma once

#include <compare>
#include <cstdint>

#include "events/event.h"
#include "model/scope_key.h"

namespace portwatch {

struct HeldSocket {
    SocketInfo sock;
    How how = How::bind;
    std::uint32_t pid = 0;
    std::uint64_t since_ns = 0;
    bool from_table = false;  // no event showed it: replaced by the event if one comes
    // what the socket tables showed of it since: connected to a peer, or listening
    bool connected = false;
    bool listening = false;

    // Computed, not kept: a tracked socket costs 52 bytes less (issue 15's memory target).
    ScopeKey scope() const { return scope_of(sock, how); }
    ScopeKind scope_kind() const { return scope_kind_of(sock, how); }
};

struct TimeWaitEntry {
    std::uint64_t expires_ns = 0;
    ScopeKey scope;
    std::uint16_t port = 0;
    std::uint64_t cookie = 0;
    std::uint64_t added_ns = 0;
    bool from_table = false;  // read from the socket tables, not from a release event
};

// In this order, a scope's entries are one run of the map, and one process's sockets on
// one port (of any kind) are neighbours.
struct ProcessPort {
    std::uint32_t netns = 0;
    Proto proto = Proto::tcp;
    std::uint32_t pid = 0;
    std::uint16_t port = 0;
    How how = How::bind;
    auto operator<=>(const ProcessPort &) const = default;
};

}  // namespace portwatch
