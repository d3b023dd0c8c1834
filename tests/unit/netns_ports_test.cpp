// SPDX-License-Identifier: Apache-2.0
#include <cstdint>
#include <optional>
#include <vector>

#include <gtest/gtest.h>

#include "model/netns_ports.h"

namespace portwatch {
namespace {

using Ports = std::vector<std::uint16_t>;

TEST(NetnsPorts, PortRangeInTheSysctlsOwnFormat) {
    EXPECT_EQ(parse_port_range("32768\t60999\n"), (PortRange{32768, 60999}));
}

TEST(NetnsPorts, PortRangeAcceptsAnyBlanksAroundAndBetween) {
    EXPECT_EQ(parse_port_range("1024 65535"), (PortRange{1024, 65535}));
    EXPECT_EQ(parse_port_range("  40000 \t 40009 \r\n"), (PortRange{40000, 40009}));
    EXPECT_EQ(parse_port_range("\t0\t0\t"), (PortRange{0, 0}));
}

TEST(NetnsPorts, PortRangeOfOnePort) {
    EXPECT_EQ(parse_port_range("5000 5000"), (PortRange{5000, 5000}));
}

TEST(NetnsPorts, PortRangeRejectsBadText) {
    for (const char *text :
         {"", " ", "\n", "abc", "32768", "32768 ", "70000 1", "1 70000", "5 3", "1 2 3", "1 2x",
          "x1 2", "1,2", "-1 2", "+1 2", "1 -2", "1\n2\n3", "4294967297 1"})
        EXPECT_EQ(parse_port_range(text), std::nullopt) << "'" << text << "'";
}

TEST(NetnsPorts, ReservedPortsEmptyListIsValid) {
    EXPECT_EQ(parse_reserved_ports(""), Ports{});
    EXPECT_EQ(parse_reserved_ports("\n"), Ports{});
    EXPECT_EQ(parse_reserved_ports(" \t\n"), Ports{});
}

TEST(NetnsPorts, ReservedPortsSinglesAndRanges) {
    EXPECT_EQ(parse_reserved_ports("8080\n"), Ports{8080});
    EXPECT_EQ(parse_reserved_ports("9000-9003"), (Ports{9000, 9001, 9002, 9003}));
    EXPECT_EQ(parse_reserved_ports("8080,9000-9002\n"), (Ports{8080, 9000, 9001, 9002}));
    EXPECT_EQ(parse_reserved_ports("40002,40005-40006"), (Ports{40002, 40005, 40006}));
}

TEST(NetnsPorts, ReservedPortsRangeIsInclusiveOfBothEnds) {
    auto ports = parse_reserved_ports("9000-9010");
    ASSERT_TRUE(ports);
    EXPECT_EQ(ports->size(), 11u);
    EXPECT_EQ(ports->front(), 9000);
    EXPECT_EQ(ports->back(), 9010);
}

TEST(NetnsPorts, ReservedPortsOneLongRangeUpToTheLastPort) {
    auto ports = parse_reserved_ports("65530-65535");
    EXPECT_EQ(ports, (Ports{65530, 65531, 65532, 65533, 65534, 65535}));
    auto all = parse_reserved_ports("0-65535");
    ASSERT_TRUE(all);
    EXPECT_EQ(all->size(), 65536u);
}

TEST(NetnsPorts, ReservedPortsAreSortedAndUnique) {
    EXPECT_EQ(parse_reserved_ports("9000,80,443"), (Ports{80, 443, 9000}));
    EXPECT_EQ(parse_reserved_ports("80,80,80"), Ports{80});
    EXPECT_EQ(parse_reserved_ports("10-12,11-13,12"), (Ports{10, 11, 12, 13}));
    EXPECT_EQ(parse_reserved_ports("20-21,5,1-2"), (Ports{1, 2, 5, 20, 21}));
}

TEST(NetnsPorts, ReservedPortsAcceptBlanksAroundItems) {
    EXPECT_EQ(parse_reserved_ports(" 80 ,\t443\n"), (Ports{80, 443}));
}

TEST(NetnsPorts, ReservedPortsRejectBadText) {
    for (const char *text : {"abc", ",", ",80", "80,,90", "1-", "-1", "-", "5-3", "70000",
                             "1-70000", "80x", "80 90", "80,90 junk", "1-2-3", "80;90", "0x50"})
        EXPECT_EQ(parse_reserved_ports(text), std::nullopt) << "'" << text << "'";
}

TEST(NetnsPorts, TwReuseValues) {
    EXPECT_EQ(parse_tw_reuse("0\n"), 0);
    EXPECT_EQ(parse_tw_reuse("1"), 1);
    EXPECT_EQ(parse_tw_reuse(" 2\t\n"), 2);
}

TEST(NetnsPorts, TwReuseRejectsBadText) {
    for (const char *text : {"", "\n", "3", "-1", "abc", "1x", "1 2", "01x", "10"})
        EXPECT_EQ(parse_tw_reuse(text), std::nullopt) << "'" << text << "'";
}

TEST(NetnsPorts, DefaultsAreTheKernels) {
    NetnsPortConfig config;
    EXPECT_EQ(config.range, (PortRange{32768, 60999}));
    EXPECT_TRUE(config.reserved.empty());
    EXPECT_EQ(config.tw_reuse, 2);
    EXPECT_EQ(config.capacity(), 28232u);
}

TEST(NetnsPorts, RangeSizeAndContains) {
    PortRange range{40000, 40009};
    EXPECT_EQ(range.size(), 10u);
    EXPECT_FALSE(range.contains(39999));
    EXPECT_TRUE(range.contains(40000));
    EXPECT_TRUE(range.contains(40009));
    EXPECT_FALSE(range.contains(40010));
    EXPECT_EQ((PortRange{0, 65535}).size(), 65536u);
    EXPECT_EQ((PortRange{7, 7}).size(), 1u);
    EXPECT_EQ((PortRange{8, 7}).size(), 0u);
}

TEST(NetnsPorts, CapacityCountsOnlyReservedPortsInsideTheRange) {
    NetnsPortConfig config{{40000, 40009}, {40002, 40005, 40006}, 0};
    EXPECT_EQ(config.reserved_in_range(), 3u);
    EXPECT_EQ(config.capacity(), 7u);

    config.reserved = {80, 39999, 40000, 40009, 40010, 65535};
    EXPECT_EQ(config.reserved_in_range(), 2u);
    EXPECT_EQ(config.capacity(), 8u);

    config.reserved = {80, 443};
    EXPECT_EQ(config.capacity(), 10u);
}

TEST(NetnsPorts, CapacityIsZeroWhenTheWholeRangeIsReserved) {
    NetnsPortConfig config{{9000, 9010}, *parse_reserved_ports("8000-9999"), 2};
    EXPECT_EQ(config.reserved_in_range(), 11u);
    EXPECT_EQ(config.capacity(), 0u);
}

TEST(NetnsPorts, IsReservedAndIsEphemeral) {
    NetnsPortConfig config{{40000, 40009}, {80, 40002, 40005, 40006}, 0};
    EXPECT_TRUE(config.is_reserved(80));
    EXPECT_TRUE(config.is_reserved(40005));
    EXPECT_FALSE(config.is_reserved(40004));

    EXPECT_TRUE(config.is_ephemeral(40000));
    EXPECT_TRUE(config.is_ephemeral(40004));
    EXPECT_TRUE(config.is_ephemeral(40009));
    EXPECT_FALSE(config.is_ephemeral(40002));  // reserved
    EXPECT_FALSE(config.is_ephemeral(40006));  // reserved
    EXPECT_FALSE(config.is_ephemeral(80));     // reserved and outside
    EXPECT_FALSE(config.is_ephemeral(39999));  // outside
    EXPECT_FALSE(config.is_ephemeral(40010));  // outside
}

TEST(NetnsPorts, ParsedTextsMakeAConfig) {
    NetnsPortConfig config{*parse_port_range("40000\t40009\n"),
                           *parse_reserved_ports("40005-40006,40002\n"), *parse_tw_reuse("0\n")};
    EXPECT_EQ(config.reserved, (Ports{40002, 40005, 40006}));
    EXPECT_EQ(config.capacity(), 7u);
    EXPECT_TRUE(config.is_ephemeral(40001));
    EXPECT_FALSE(config.is_ephemeral(40002));
}

}  // namespace
}  // namespace portwatch
