// SPDX-License-Identifier: Apache-2.0
// What the capture needs to know: which events to keep, how much kernel memory to use, which
// hooks to attach. The command line fills it (app/options.h); these are the defaults.
#pragma once

#include <cstdint>

#include "capture/kernel_features.h"
#include "events/filters.h"

namespace portwatch {

struct CaptureConfig {
    Filters filters;
    std::uint32_t ringbuf_mb = 8;
    std::uint32_t max_tracked_sockets = 1u << 16;
    HookChoice hooks = HookChoice::automatic;
};

// The size of each kernel table of calls in flight (pending, tcp_calls_in_flight,
// io_uring_calls in bpf/): a quarter of the sockets followed, 16,384 by default. A call that
// does not fit is counted in pending_overflow.
constexpr std::uint32_t calls_in_flight(const CaptureConfig &config) {
    return config.max_tracked_sockets / 4 ? config.max_tracked_sockets / 4 : 1;
}

}  // namespace portwatch
