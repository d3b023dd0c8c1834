// SPDX-License-Identifier: Apache-2.0
#include "model/scope_key.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <tuple>
#include <vector>

namespace portwatch {
namespace {

std::strong_ordering memcmp_order(const std::array<std::uint8_t, 16> &a,
                                  const std::array<std::uint8_t, 16> &b) {
    return std::memcmp(a.data(), b.data(), a.size()) <=> 0;
}

// The order ScopeKey had before it compared addresses by 8-byte loads: reports list scopes in
// it, so it must not change.
std::strong_ordering tuple_order(const ScopeKey &a, const ScopeKey &b) {
    return std::tie(a.kind, a.netns, a.local_addr.family, a.local_addr.bytes, a.remote_addr.family,
                    a.remote_addr.bytes, a.remote_port) <=>
           std::tie(b.kind, b.netns, b.local_addr.family, b.local_addr.bytes, b.remote_addr.family,
                    b.remote_addr.bytes, b.remote_port);
}

// Bytes that differ in the high bit, in the first or second half, or only in the last byte.
std::array<std::uint8_t, 16> bytes_from(std::mt19937 &random) {
    static constexpr std::uint8_t kValues[] = {0, 1, 0x7f, 0x80, 0xff};
    std::array<std::uint8_t, 16> bytes{};
    for (auto &byte : bytes) byte = kValues[random() % std::size(kValues)];
    return bytes;
}

TEST(ScopeKeyTest, ByteOrderIsMemcmpOrder) {
    std::mt19937 random(15);
    for (int i = 0; i < 20000; i++) {
        auto a = bytes_from(random), b = bytes_from(random);
        if (i % 3 == 0) b = a;
        if (i % 3 == 1) b[random() % 16] ^= std::uint8_t(1u << (random() % 8));
        ASSERT_EQ(byte_order(a, b), memcmp_order(a, b)) << i;
    }
}

TEST(ScopeKeyTest, KeysOrderAsTheirFieldsInTurn) {
    std::mt19937 random(16);
    std::vector<ScopeKey> keys;
    for (int i = 0; i < 400; i++) {
        ScopeKey key;
        key.kind = static_cast<ScopeKind>(random() % 3);
        key.netns = 4026531840u + random() % 2;
        key.local_addr.family = random() % 2 ? Family::ipv4 : Family::ipv6;
        key.local_addr.bytes = bytes_from(random);
        key.remote_addr.family = random() % 2 ? Family::ipv4 : Family::ipv6;
        key.remote_addr.bytes = bytes_from(random);
        key.remote_port = std::uint16_t(random() % 3 ? 443 : 80);
        keys.push_back(key);
    }
    for (const ScopeKey &a : keys)
        for (const ScopeKey &b : keys) ASSERT_EQ(a <=> b, tuple_order(a, b));
}

}  // namespace
}  // namespace portwatch
