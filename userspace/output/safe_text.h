// SPDX-License-Identifier: Apache-2.0
// Turning kernel-supplied bytes and numbers into text that is always safe to print.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "events/event.h"

namespace portwatch {

// Valid UTF-8 sequences stay as they are; every byte that is not part of one
// becomes the four characters \xNN. `altered` says whether that happened.
struct SafeText {
    std::string text;
    bool altered = false;
};
SafeText utf8_or_escaped(std::string_view raw);
// ASCII is UTF-8 as it is: utf8_or_escaped() would only copy it.
bool is_ascii(std::string_view raw);

// For a terminal column: as above, and control characters become \xNN too.
std::string printable(std::string_view raw);
// printable() in a column `width` characters wide: padded with spaces, or cut between two
// characters (never inside an escape) and ended with '+' when longer.
std::string printable_column(std::string_view raw, std::size_t width);

std::string hex_bytes(std::string_view raw);

// snprintf into a std::string.
std::string format_text(const char *pattern, auto... args) {
    int length = std::snprintf(nullptr, 0, pattern, args...);
    std::string text(length > 0 ? std::size_t(length) : 0, '\0');
    std::snprintf(text.data(), text.size() + 1, pattern, args...);
    return text;
}

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
