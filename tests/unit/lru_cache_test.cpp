// SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>

#include <string>

#include "base/lru_cache.h"

namespace portwatch {
namespace {

TEST(LruCache, FindsWhatWasPut) {
    LruCache<int, std::string> cache(4);
    EXPECT_EQ(cache.find(1), nullptr);
    cache.put(1, "one");
    ASSERT_NE(cache.find(1), nullptr);
    EXPECT_EQ(*cache.find(1), "one");
    cache.put(1, "uno");
    EXPECT_EQ(*cache.find(1), "uno");
    EXPECT_EQ(cache.size(), 1u);
}

TEST(LruCache, NeverHoldsMoreThanItsCapacity) {
    LruCache<int, int> cache(100);
    for (int i = 0; i < 10'000; i++) cache.put(i, i);
    EXPECT_EQ(cache.size(), 100u);
    EXPECT_EQ(cache.find(9'899), nullptr);
    ASSERT_NE(cache.find(9'900), nullptr);
    ASSERT_NE(cache.find(9'999), nullptr);
}

TEST(LruCache, DropsTheLeastRecentlyUsed) {
    LruCache<int, int> cache(3);
    cache.put(1, 10);
    cache.put(2, 20);
    cache.put(3, 30);
    cache.find(1);     // 2 is now the least recently used
    cache.put(2, 21);  // ... and now 3
    cache.put(4, 40);
    EXPECT_EQ(cache.find(3), nullptr);
    EXPECT_NE(cache.find(1), nullptr);
    EXPECT_EQ(*cache.find(2), 21);
    EXPECT_NE(cache.find(4), nullptr);
    EXPECT_EQ(cache.size(), 3u);
}

TEST(LruCache, CapacityZeroStillKeepsOne) {
    LruCache<int, int> cache(0);
    cache.put(1, 1);
    cache.put(2, 2);
    EXPECT_EQ(cache.capacity(), 1u);
    EXPECT_EQ(cache.find(1), nullptr);
    EXPECT_EQ(*cache.find(2), 2);
}

}  // namespace
}  // namespace portwatch
