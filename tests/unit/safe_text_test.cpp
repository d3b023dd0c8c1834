// SPDX-License-Identifier: Apache-2.0
#include <arpa/inet.h>

#include <string>

#include <gtest/gtest.h>

#include "sample_events.h"
#include "output/value_text.h"

namespace portwatch {
namespace {

using namespace portwatch::testing;

struct Utf8Case {
    std::string raw;
    std::string expected;
    bool altered;
};

TEST(Text, Utf8OrEscaped) {
    const Utf8Case cases[] = {
        {"", "", false},
        {"curl", "curl", false},
        {"a\tb\n", "a\tb\n", false},                         // controls are valid UTF-8
        {"caf\xc3\xa9", "caf\xc3\xa9", false},               // 2 bytes
        {"\xe2\x82\xac", "\xe2\x82\xac", false},             // 3 bytes: euro sign
        {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80", false},     // 4 bytes
        {"\xed\x9f\xbf", "\xed\x9f\xbf", false},             // U+D7FF, last before surrogates
        {"\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf", false},     // U+10FFFF
        {"\xc0\x80", "\\xc0\\x80", true},                    // overlong NUL
        {"\xc1\xbf", "\\xc1\\xbf", true},                    // overlong
        {"\xe0\x80\xaf", "\\xe0\\x80\\xaf", true},           // overlong 3-byte
        {"\xf0\x80\x80\x80", "\\xf0\\x80\\x80\\x80", true},  // overlong 4-byte
        {"\xed\xa0\x80", "\\xed\\xa0\\x80", true},           // surrogate U+D800
        {"\xed\xbf\xbf", "\\xed\\xbf\\xbf", true},           // surrogate U+DFFF
        {"\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80", true},  // U+110000
        {"\xf5\x80\x80\x80", "\\xf5\\x80\\x80\\x80", true},  // lead byte never valid
        {"\xe2\x82", "\\xe2\\x82", true},                    // truncated at the end
        {"\xe2(\xa1", "\\xe2(\\xa1", true},                  // broken continuation
        {"\x80", "\\x80", true},                             // lone continuation
        {"a\xff\xfe", "a\\xff\\xfe", true},
        {"\xff\xc3\xa9", "\\xff\xc3\xa9", true},  // valid sequence after a bad byte kept
    };
    for (const auto &c : cases) {
        SafeText out = utf8_or_escaped(c.raw);
        EXPECT_EQ(out.text, c.expected) << c.expected;
        EXPECT_EQ(out.altered, c.altered) << c.expected;
    }
}

TEST(Text, PrintableEscapesControls) {
    const std::pair<std::string, std::string> cases[] = {
        {"curl", "curl"},
        {"a\tb", "a\\x09b"},
        {"x\ny", "x\\x0ay"},
        {"\r", "\\x0d"},
        {"del\x7f", "del\\x7f"},
        {"\x1b[31m", "\\x1b[31m"},
        {std::string("a\0b", 3), "a\\x00b"},
        {"caf\xc3\xa9", "caf\xc3\xa9"},
        {"\xff", "\\xff"},
        {"\xc2\x9b"
         "2J",
         "\\xc2\\x9b2J"},          // C1 CSI
        {"\xc2\xa0", "\xc2\xa0"},  // no-break space: shown
        {"abc\xe2\x80\xae"
         "exe.txt",
         "abc\\xe2\\x80\\xaeexe.txt"},          // right-to-left override
        {"\xe2\x81\xa6x", "\\xe2\\x81\\xa6x"},  // left-to-right isolate
        {"\xe2\x80\x94", "\xe2\x80\x94"},       // em dash: shown
    };
    for (const auto &[raw, expected] : cases) EXPECT_EQ(printable(raw), expected);
}

TEST(Text, PrintableColumnIsAlwaysItsWidth) {
    const std::pair<std::string, std::string> cases[] = {
        {"nginx", "nginx           "},
        {"sixteen-chars-ok", "sixteen-chars-ok"},
        {"seventeen-chars-x", "seventeen-chars+"},
        {"\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"},              // 16 columns escaped
        {"\x1b\x1b\x1b\x1b\x1b", "\\x1b\\x1b\\x1b+   "},         // cut between escapes
        {"\xc3\xbc\xc3\xbc", "\xc3\xbc\xc3\xbc              "},  // "uu" with umlauts: 2 columns
        {"", "                "},
    };
    for (const auto &[raw, expected] : cases)
        EXPECT_EQ(printable_column(raw, 16), expected) << printable(raw);
    std::string umlauts;
    for (int i = 0; i < 20; i++) umlauts += "\xc3\xbc";
    EXPECT_EQ(printable_column(umlauts, 16), umlauts.substr(0, 30) + "+") << "15 characters and +";
}

TEST(Text, HexBytes) {
    EXPECT_EQ(hex_bytes(""), "");
    EXPECT_EQ(hex_bytes(std::string("\x00\x01\xab\xff", 4)), "0001abff");
    EXPECT_EQ(hex_bytes("curl"), "6375726c");
}

IpAddress ipv6_bytes(std::initializer_list<std::pair<int, std::uint8_t>> set) {
    IpAddress addr;
    addr.family = Family::ipv6;
    for (const auto &[index, value] : set) addr.bytes[index] = value;
    return addr;
}

TEST(Text, ToString) {
    const std::pair<IpAddress, const char *> cases[] = {
        {ipv4(10, 0, 0, 1), "10.0.0.1"},
        {ipv4(255, 255, 255, 255), "255.255.255.255"},
        {ipv4(0, 0, 0, 0), "0.0.0.0"},
        {ipv6_doc(1), "2001:db8::1"},
        {ipv6_bytes({{15, 1}}), "::1"},
        {ipv6_bytes({}), "::"},
        {ipv6_bytes({{10, 0xff}, {11, 0xff}, {12, 1}, {13, 2}, {14, 3}, {15, 4}}),
         "::ffff:1.2.3.4"},
        {ipv6_bytes({{0, 0xfe}, {1, 0x80}, {14, 0xab}, {15, 0xcd}}), "fe80::abcd"},
    };
    for (const auto &[addr, text] : cases) EXPECT_EQ(to_string(addr), text);
}

TEST(Text, ToStringWritesEveryIpv4AddressAsInetNtop) {
    for (int value = 0; value < 256; value++) {
        for (std::size_t position = 0; position < 4; position++) {
            IpAddress addr = ipv4(1, 22, 133, 4);
            addr.bytes[position] = static_cast<std::uint8_t>(value);
            char expected[INET_ADDRSTRLEN];
            ASSERT_NE(inet_ntop(AF_INET, addr.bytes.data(), expected, sizeof expected), nullptr);
            EXPECT_EQ(to_string(addr), expected);
        }
    }
}

TEST(Text, Endpoint) {
    EXPECT_EQ(endpoint(ipv4(127, 0, 0, 1), 80), "127.0.0.1:80");
    EXPECT_EQ(endpoint(ipv6_bytes({{15, 1}}), 80), "[::1]:80");
    EXPECT_EQ(endpoint(ipv6_doc(1), 65535), "[2001:db8::1]:65535");
    EXPECT_EQ(endpoint(ipv4(0, 0, 0, 0), 0), "0.0.0.0:0");
}

TEST(Text, IsUnspecified) {
    EXPECT_TRUE(ipv4(0, 0, 0, 0).is_unspecified());
    EXPECT_FALSE(ipv4(0, 0, 0, 1).is_unspecified());
    EXPECT_TRUE(ipv6_bytes({}).is_unspecified());
    EXPECT_FALSE(ipv6_bytes({{15, 1}}).is_unspecified());
    IpAddress v4 = ipv4(0, 0, 0, 0);
    v4.bytes[8] = 1;  // past an IPv4 address
    EXPECT_TRUE(v4.is_unspecified());
}

TEST(Text, Rfc3339Utc) {
    const std::pair<std::int64_t, const char *> cases[] = {
        {0, "1970-01-01T00:00:00.000000Z"},
        {1'700'000'000'123'456'789, "2023-11-14T22:13:20.123456Z"},
        {kRealtimeNs, kTs},
        {1'795'255'200'000'000'999, "2026-11-21T10:00:00.000000Z"},  // sub-µs truncated
        {1'795'255'199'999'999'000, "2026-11-21T09:59:59.999999Z"},
        {951'782'400'000'001'000, "2000-02-29T00:00:00.000001Z"},
        {-1000, "1969-12-31T23:59:59.999999Z"},
        {-1'500'000'000, "1969-12-31T23:59:58.500000Z"},
    };
    for (const auto &[ns, text] : cases) EXPECT_EQ(rfc3339_utc(ns), text) << ns;
}

TEST(Text, Rfc3339UtcOfTheSameSecondAgainAndOfAnother) {
    const std::pair<std::int64_t, const char *> in_turn[] = {
        {1'795'255'200'000'001'000, "2026-11-21T10:00:00.000001Z"},
        {1'795'255'200'999'999'999, "2026-11-21T10:00:00.999999Z"},
        {1'795'255'201'000'000'000, "2026-11-21T10:00:01.000000Z"},
        {1'795'255'200'500'000'000, "2026-11-21T10:00:00.500000Z"},
        {-1000, "1969-12-31T23:59:59.999999Z"},
        {1'795'255'200'000'000'000, "2026-11-21T10:00:00.000000Z"},
    };
    for (const auto &[ns, text] : in_turn) EXPECT_EQ(rfc3339_utc(ns), text) << ns;
}

TEST(Text, TimeBaseAddsTheOffset) {
    TimeBase time{1'000};
    EXPECT_EQ(time.realtime(5), 1'005);
    EXPECT_EQ(TimeBase{-5}.realtime(2), -3);
}

}  // namespace
}  // namespace portwatch
