// SPDX-License-Identifier: Apache-2.0
#include "output/value_text.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <ctime>
#include <limits>

namespace portwatch {

std::string to_string(const IpAddress &addr) {
    if (addr.family == Family::ipv4) {  // as inet_ntop writes it, without its sprintf per byte
        std::array<char, 16> buffer;
        char *end = buffer.data();
        for (std::size_t i = 0; i < 4; i++) {
            if (i) *end++ = '.';
            end = std::to_chars(end, buffer.data() + buffer.size(), addr.bytes[i]).ptr;
        }
        return std::string(buffer.data(), end);
    }
    std::array<char, INET6_ADDRSTRLEN> buffer{};
    if (!inet_ntop(AF_INET6, addr.bytes.data(), buffer.data(), buffer.size())) return "?";
    return buffer.data();
}

std::string endpoint(const IpAddress &addr, std::uint16_t port) {
    std::string host = to_string(addr);
    if (addr.family == Family::ipv6) host = "[" + host + "]";
    return host + ":" + std::to_string(port);
}

namespace {

// "2026-11-21T10:00:00" of a second since the epoch. Lines come many to a second: the last
// second's text is kept (per thread: the metrics server formats too).
std::string_view utc_seconds(std::int64_t seconds) {
    thread_local std::int64_t cached_seconds = std::numeric_limits<std::int64_t>::min();
    thread_local std::array<char, 32> cached{};
    thread_local std::size_t cached_length = 0;
    if (seconds != cached_seconds) {
        std::time_t t = static_cast<std::time_t>(seconds);
        std::tm utc{};
        gmtime_r(&t, &utc);
        cached_length = std::strftime(cached.data(), cached.size(), "%Y-%m-%dT%H:%M:%S", &utc);
        cached_seconds = seconds;
    }
    return {cached.data(), cached_length};
}

}  // namespace

std::string_view rfc3339_utc(std::int64_t realtime_ns, Rfc3339Room &room) {
    std::int64_t seconds = realtime_ns / 1'000'000'000;
    std::int64_t micros = (realtime_ns % 1'000'000'000) / 1000;
    if (micros < 0) {
        seconds -= 1;
        micros += 1'000'000;
    }
    std::string_view date = utc_seconds(seconds);
    char fraction[] = ".000000Z";
    for (int digit = 6; digit >= 1; digit--, micros /= 10)
        fraction[digit] = char('0' + micros % 10);
    std::size_t length = std::min(date.size(), room.size() - (sizeof fraction - 1));
    std::copy_n(date.data(), length, room.data());
    std::copy_n(fraction, sizeof fraction - 1, room.data() + length);
    return {room.data(), length + sizeof fraction - 1};
}

}  // namespace portwatch
