// SPDX-License-Identifier: Apache-2.0
#include "agent/reach.h"

#include <gtest/gtest.h>

namespace portwatch {
namespace {

bool starts_with(const std::string &text, const std::string &prefix) {
    return text.rfind(prefix, 0) == 0;
}

TEST(Reach, FullReachSaysNothing) {
    EXPECT_TRUE(reach_limits({true, true, true}).empty());
}

TEST(Reach, EachLimitIsNamed) {
    auto cgroup = reach_limits({true, true, false});
    ASSERT_EQ(cgroup.size(), 1u);
    EXPECT_TRUE(starts_with(cgroup[0], "the cgroup2 mount is not the root cgroup")) << cgroup[0];

    auto netns = reach_limits({false, true, true});
    ASSERT_EQ(netns.size(), 1u);
    EXPECT_TRUE(starts_with(netns[0], "no CAP_SYS_ADMIN and CAP_SYS_PTRACE: ")) << netns[0];

    auto owners = reach_limits({true, false, true});
    ASSERT_EQ(owners.size(), 1u);
    EXPECT_TRUE(starts_with(owners[0], "no CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH: ")) << owners[0];

    EXPECT_EQ(reach_limits({false, false, false}).size(), 3u);
}

}  // namespace
}  // namespace portwatch
