// SPDX-License-Identifier: Apache-2.0
// The enum name tables: each value prints one name that parses back to it, no name is used
// twice, and the printed names are the JSON contract's (docs/json.md) and --help's.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "base/enum_names.h"
#include "capture/kernel_features.h"
#include "events/abi.h"
#include "events/decoder.h"
#include "events/event.h"
#include "model/scope_key.h"
#include "output/names.h"
#include "output/output_choice.h"

namespace portwatch {
namespace {

template <typename Enum, std::size_t N>
void expect_round_trip(const EnumName<Enum> (&table)[N]) {
    std::set<std::string_view> seen;
    for (const EnumName<Enum> &entry : table) {
        EXPECT_TRUE(seen.insert(entry.name).second) << entry.name << " named twice";
        std::string_view printed = name_in(table, entry.value);
        EXPECT_EQ(value_named(table, printed), entry.value) << printed;
        EXPECT_EQ(value_named(table, entry.name), entry.value) << entry.name;
    }
}

TEST(EnumNamesTest, EveryTableNamesEachValueOnceAndParsesItBack) {
    expect_round_trip(kHowNames);
    expect_round_trip(kSyscallNames);
    expect_round_trip(kProtoNames);
    expect_round_trip(kFamilyNames);
    expect_round_trip(kReleaseReasonNames);
    expect_round_trip(kScopeKindNames);
    expect_round_trip(kCauseKindNames);
    expect_round_trip(kWarningLevelNames);
    expect_round_trip(kDecodeErrorNames);
    expect_round_trip(kEventLinesNames);
    expect_round_trip(kHookSetNames);
    expect_round_trip(kHookChoiceNames);
}

TEST(EnumNamesTest, AnAliasParsesButTheFirstNameIsPrinted) {
    EXPECT_EQ(parse_family("4"), Family::ipv4);
    EXPECT_EQ(parse_family("ipv6"), Family::ipv6);
    EXPECT_EQ(name_of(Family::ipv4), "ipv4");
    EXPECT_EQ(names_in(kFamilyNames), (std::vector<std::string>{"ipv4", "ipv6", "4", "6"}));
}

TEST(EnumNamesTest, AValueOutsideTheTableIsUnknownAndAStrangerParsesToNothing) {
    EXPECT_EQ(name_of(static_cast<How>(99)), "unknown");
    EXPECT_EQ(value_named(kHookChoiceNames, "kprobe"), std::nullopt);
    EXPECT_EQ(parse_proto("TCP"), std::nullopt);
}

// The five ways, as the kernel side numbers them (bpf/portwatch_abi.h): the table has each.
TEST(EnumNamesTest, TheHowTableHasEveryKindTheKernelSideSends) {
    EXPECT_EQ(std::size(kHowNames), std::size_t(PW_HOW_COUNT - PW_HOW_BIND));
}

}  // namespace
}  // namespace portwatch
