// SPDX-License-Identifier: Apache-2.0
// Result<T> and Status: a value or why not.
#include "base/result.h"

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace portwatch {
namespace {

Result<int> half(int number) {
    if (number % 2 != 0) return Failure{std::to_string(number) + " is odd"};
    return number / 2;
}

Status even(int number) {
    if (Result<int> halved = half(number); !halved) return Failure{halved.error()};
    return {};
}

TEST(Result, HoldsTheValue) {
    Result<int> result = half(8);
    ASSERT_TRUE(result.ok());
    EXPECT_TRUE(static_cast<bool>(result));
    EXPECT_EQ(result.value(), 4);
    EXPECT_EQ(*result, 4);
    EXPECT_EQ(result.error(), "");
}

TEST(Result, HoldsWhyNot) {
    Result<int> result = half(7);
    EXPECT_FALSE(result.ok());
    EXPECT_FALSE(static_cast<bool>(result));
    EXPECT_EQ(result.error(), "7 is odd");
    EXPECT_EQ(result.value_or(-1), -1);
    EXPECT_THROW((void)result.value(), std::logic_error);
}

TEST(Result, MovesItsValueOut) {
    Result<std::unique_ptr<int>> result = std::make_unique<int>(3);
    std::unique_ptr<int> taken = std::move(result).value();
    ASSERT_TRUE(taken);
    EXPECT_EQ(*taken, 3);
}

TEST(Status, SuccessOrWhyNot) {
    EXPECT_TRUE(even(2).ok());
    EXPECT_EQ(even(2).error(), "");
    Status failed = even(3);
    EXPECT_FALSE(failed);
    EXPECT_EQ(failed.error(), "3 is odd");
}

}  // namespace
}  // namespace portwatch
