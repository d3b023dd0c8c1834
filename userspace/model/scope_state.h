// SPDX-License-Identifier: Apache-2.0
// What the model keeps per allocation scope between events: ports held (by whom), TIME_WAIT,
// and the per-second samples its rate, ETA and level are computed from. PortModel's own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <utility>

#include "events/event.h"
#include "model/scope_key.h"

namespace portwatch {

inline constexpr std::uint64_t kSecondNs = 1'000'000'000;

struct ScopeState {
    Proto proto = Proto::tcp;
    std::size_t held = 0;
    std::size_t time_wait = 0;
    std::unordered_map<std::uint32_t, std::size_t> held_by_pid;
    std::deque<std::pair<std::uint64_t, std::size_t>> in_use_samples;  // one per second
    std::deque<std::pair<std::uint64_t, std::uint64_t>> allocations;   // per second
    // releases per second: TCP into TIME_WAIT (this host closed first) or to CLOSE
    // without it (the peer closed first, or a reset); any other (a listener, a fixed
    // bind, UDP)
    struct Releases {
        std::uint64_t second = 0;
        std::uint64_t time_wait = 0;
        std::uint64_t closed = 0;
        std::uint64_t other = 0;
    };
    std::deque<Releases> releases;
    WarningLevel level = WarningLevel::ok;
    bool failure_reported = false;
    std::size_t nat_capacity = 0;  // nat scopes: the width of the port range they draw from
    std::uint64_t nat_drop_ns = 0;  // nat scopes: when their netns's NAT last dropped a packet
    std::string nat_rule;           // nat scopes: the rule whose range they draw from; "": none
};

}  // namespace portwatch
