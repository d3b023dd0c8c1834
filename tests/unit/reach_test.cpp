#include "core/reach.h"

#include <gtest/gtest.h>

namespace portwatch {
namespace {

TEST(Reach, FullReachSaysNothing) {
    EXPECT_TRUE(reach_limits({true, true}).empty());
}

TEST(Reach, EachMissingCapabilityIsNamed) {
    auto netns_only = reach_limits({false, true});
    ASSERT_EQ(netns_only.size(), 1u);
    EXPECT_EQ(netns_only[0].rfind("no CAP_SYS_ADMIN and CAP_SYS_PTRACE: ", 0), 0u);

    auto owners_only = reach_limits({true, false});
    ASSERT_EQ(owners_only.size(), 1u);
    EXPECT_EQ(owners_only[0].rfind("no CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH: ", 0), 0u);

    EXPECT_EQ(reach_limits({false, false}).size(), 2u);
}

}  // namespace
}  // namespace portwatch
