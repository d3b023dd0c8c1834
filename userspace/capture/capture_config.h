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

}  // namespace portwatch
