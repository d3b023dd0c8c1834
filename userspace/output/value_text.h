// SPDX-License-Identifier: Apache-2.0
// Addresses, endpoints and times as the output writes them.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/printable_text.h"
#include "events/event.h"

namespace portwatch {

std::string to_string(const IpAddress &addr);  // "10.0.0.1", "::1", "::ffff:1.2.3.4"

// "[::1]:80" / "127.0.0.1:80"
std::string endpoint(const IpAddress &addr, std::uint16_t port);

// RFC 3339, UTC, microseconds: "2026-11-21T10:00:00.123456Z", written into `room` (no
// allocation: the monitor stamps every event line).
using Rfc3339Room = std::array<char, 40>;  // utc_seconds() writes at most 31
std::string_view rfc3339_utc(std::int64_t realtime_ns, Rfc3339Room &room);
inline std::string rfc3339_utc(std::int64_t realtime_ns) {
    Rfc3339Room room;
    return std::string(rfc3339_utc(realtime_ns, room));
}

// Kernel timestamps are CLOCK_BOOTTIME; this is the offset to CLOCK_REALTIME, injected
// wherever a wall time is printed. It moves when the wall clock is stepped (NTP, `date -s`):
// the live loop measures it again every turn (Reporter::set_time_base()).
struct TimeBase {
    std::int64_t boot_to_realtime_ns = 0;
    // From one reading of both clocks.
    static TimeBase between(std::int64_t realtime_ns, std::int64_t boottime_ns) {
        return TimeBase{realtime_ns - boottime_ns};
    }
    // Wraps instead of overflowing for a boot time no kernel sends (a corrupt record).
    std::int64_t realtime(std::uint64_t boot_ns) const {
        return static_cast<std::int64_t>(boot_ns + static_cast<std::uint64_t>(boot_to_realtime_ns));
    }
};

}  // namespace portwatch
