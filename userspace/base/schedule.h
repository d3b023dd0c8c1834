// SPDX-License-Identifier: Apache-2.0
// Periodic deadlines that do not catch up: after a stall (SIGSTOP, a blocked pipe) a
// periodic line is written once, not once per missed period.
#pragma once

#include <cstdint>

namespace portwatch {

// The first deadline on the `deadline + k * interval` grid that is later than `now`.
constexpr std::int64_t next_deadline(std::int64_t deadline, std::int64_t interval,
                                     std::int64_t now) {
    if (interval <= 0) return deadline;
    if (now < deadline) return deadline;
    return deadline + ((now - deadline) / interval + 1) * interval;
}

}  // namespace portwatch
