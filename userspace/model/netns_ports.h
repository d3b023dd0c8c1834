// SPDX-License-Identifier: Apache-2.0
// A network namespace's port settings, as the kernel's sysctls say them:
// net.ipv4.ip_local_port_range, ip_local_reserved_ports and tcp_tw_reuse (all per netns).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace portwatch {

struct PortRange {
    std::uint16_t low = 32768;  // the kernel's defaults
    std::uint16_t high = 60999;

    bool contains(std::uint16_t port) const { return port >= low && port <= high; }
    std::size_t size() const { return high >= low ? std::size_t(high - low) + 1 : 0; }
    bool operator==(const PortRange &) const = default;
};

struct NetnsPortConfig {
    PortRange range;
    std::vector<std::uint16_t> reserved;  // sorted, unique
    int tw_reuse = 2;                     // 0 off, 1 on, 2 loopback only (the default)

    bool is_reserved(std::uint16_t port) const;
    std::size_t reserved_in_range() const;
    // Ports an automatic choice can hand out: the range minus the reserved ports in it.
    std::size_t capacity() const { return range.size() - reserved_in_range(); }
    // Inside the range and not reserved (what the kernel's automatic choice may return).
    bool is_ephemeral(std::uint16_t port) const {
        return range.contains(port) && !is_reserved(port);
    }
};

// "32768\t60999\n" (the sysctl's own format; any blanks between the two numbers).
std::optional<PortRange> parse_port_range(std::string_view text);
// "" or "8080,9000-9010\n": comma-separated ports and inclusive ranges.
std::optional<std::vector<std::uint16_t>> parse_reserved_ports(std::string_view text);
// "0", "1" or "2".
std::optional<int> parse_tw_reuse(std::string_view text);

}  // namespace portwatch
