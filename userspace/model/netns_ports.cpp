// SPDX-License-Identifier: Apache-2.0
#include "model/netns_ports.h"

#include <algorithm>
#include <charconv>

namespace portwatch {
namespace {

std::string_view trim(std::string_view text) {
    auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    while (!text.empty() && blank(text.front())) text.remove_prefix(1);
    while (!text.empty() && blank(text.back())) text.remove_suffix(1);
    return text;
}

// A whole decimal number in [0, max], nothing else.
std::optional<unsigned> parse_number(std::string_view text, unsigned max) {
    text = trim(text);
    unsigned value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc() || end != text.data() + text.size() || value > max)
        return std::nullopt;
    return value;
}

}  // namespace

bool NetnsPortConfig::is_reserved(std::uint16_t port) const {
    return std::binary_search(reserved.begin(), reserved.end(), port);
}

std::size_t NetnsPortConfig::reserved_in_range() const {
    auto first = std::lower_bound(reserved.begin(), reserved.end(), range.low);
    auto last = std::upper_bound(reserved.begin(), reserved.end(), range.high);
    return first < last ? std::size_t(last - first) : 0;
}

std::optional<PortRange> parse_port_range(std::string_view text) {
    text = trim(text);
    auto gap = text.find_first_of(" \t");
    if (gap == std::string_view::npos) return std::nullopt;
    auto low = parse_number(text.substr(0, gap), 65535);
    auto high = parse_number(text.substr(gap), 65535);
    if (!low || !high || *low > *high) return std::nullopt;
    return PortRange{std::uint16_t(*low), std::uint16_t(*high)};
}

std::optional<std::vector<std::uint16_t>> parse_reserved_ports(std::string_view text) {
    std::vector<std::uint16_t> ports;
    text = trim(text);
    while (!text.empty()) {
        auto comma = text.find(',');
        std::string_view item = text.substr(0, comma);
        text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
        auto dash = item.find('-');
        auto first = parse_number(item.substr(0, dash), 65535);
        auto last =
            dash == std::string_view::npos ? first : parse_number(item.substr(dash + 1), 65535);
        if (!first || !last || *first > *last) return std::nullopt;
        for (unsigned port = *first; port <= *last; port++) ports.push_back(std::uint16_t(port));
    }
    std::sort(ports.begin(), ports.end());
    ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
    return ports;
}

std::optional<int> parse_tw_reuse(std::string_view text) {
    auto value = parse_number(text, 2);
    if (!value) return std::nullopt;
    return int(*value);
}

}  // namespace portwatch
