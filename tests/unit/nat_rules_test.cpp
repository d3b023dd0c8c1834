// SPDX-License-Identifier: Apache-2.0
// The NAT rules read from the tools' real output: tests/unit/nat_rules/ holds each ruleset
// (NAME.nft, NAME.rules) and what nft and iptables-save printed for it on a real kernel
// (capture.sh remakes them).
#include <fstream>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/nat_rules.h"

namespace portwatch {

// Readable failures: what a rule says, in one line.
void PrintTo(const NatRule &rule, std::ostream *out) {
    auto address = [](const IpAddress &addr) {
        std::ostringstream text;
        for (std::size_t i = 0; i < (addr.family == Family::ipv4 ? 4u : 16u); i++)
            text << (i ? "." : "") << int(addr.bytes[i]);
        return text.str();
    };
    *out << "{" << rule.where << ": family " << (rule.family ? int(*rule.family) : -1) << " proto "
         << (rule.proto ? int(*rule.proto) : -1) << (rule.masquerade ? " masquerade" : " snat");
    if (rule.addresses)
        *out << " to " << address(rule.addresses->first) << "-" << address(rule.addresses->second);
    if (rule.ports) *out << " ports " << rule.ports->low << "-" << rule.ports->high;
    *out << (rule.random ? " random" : "") << (rule.fully_random ? " fully-random" : "")
         << (rule.persistent ? " persistent" : "") << " oif "
         << (rule.out_interface_negated ? "!" : "") << rule.out_interface << "}";
}

namespace {

std::string captured(const std::string &name) {
    std::ifstream file(PORTWATCH_SOURCE_DIR "/tests/unit/nat_rules/" + name);
    EXPECT_TRUE(file) << name;
    std::ostringstream text;
    text << file.rdbuf();
    return text.str();
}

std::vector<NatRule> nft_rules(const std::string &name) {
    Result<std::vector<NatRule>> rules = nat_rules_from_nft_json(captured(name));
    EXPECT_TRUE(rules.ok()) << name << ": " << rules.error();
    return rules.value_or(std::vector<NatRule>{});
}

std::vector<NatRule> save_rules(const std::string &name, Family family) {
    Result<std::vector<NatRule>> rules = nat_rules_from_iptables_save(captured(name), family);
    EXPECT_TRUE(rules.ok()) << name << ": " << rules.error();
    return rules.value_or(std::vector<NatRule>{});
}

IpAddress ip(const char *text) {
    std::optional<IpAddress> addr = parse_ip_address(text);
    EXPECT_TRUE(addr) << text;
    return addr.value_or(IpAddress{});
}

std::pair<IpAddress, IpAddress> ips(const char *first, const char *last) {
    return {ip(first), ip(last)};
}

// ---- nft -j list ruleset -----------------------------------------------------------------

TEST(NatRulesNft, MasqueradeWithARangeAndWithOnePort) {
    std::vector<NatRule> expected = {{.family = Family::ipv4,
                                      .proto = Proto::tcp,
                                      .masquerade = true,
                                      .ports = PortRange{40000, 40009},
                                      .out_interface = "veth-srv",
                                      .where = "nft table ip t chain post handle 2"},
                                     {.family = Family::ipv4,
                                      .proto = Proto::udp,
                                      .masquerade = true,
                                      .ports = PortRange{40010, 40010},
                                      .out_interface = "veth-srv",
                                      .where = "nft table ip t chain post handle 3"}};
    EXPECT_EQ(nft_rules("masq_range.json"), expected);
}

TEST(NatRulesNft, SnatToTwoAddressesWithPortsAndFlags) {
    std::vector<NatRule> rules = nft_rules("snat_two_addresses.json");
    ASSERT_EQ(rules.size(), 5u);
    // ip saddr 198.18.1.0/24 meta l4proto udp snat to 198.19.0.1-198.19.0.2:20000-20999 persistent
    EXPECT_EQ(rules[0], (NatRule{.family = Family::ipv4,
                                 .proto = Proto::udp,
                                 .addresses = ips("198.19.0.1", "198.19.0.2"),
                                 .ports = PortRange{20000, 20999},
                                 .persistent = true,
                                 .where = "nft table ip nat chain postrouting handle 2"}));
    // ip saddr 198.18.2.0/24 tcp dport 443 snat to 198.19.0.5 random: `tcp dport` means TCP
    EXPECT_EQ(rules[1], (NatRule{.family = Family::ipv4,
                                 .proto = Proto::tcp,
                                 .addresses = ips("198.19.0.5", "198.19.0.5"),
                                 .random = true,
                                 .where = "nft table ip nat chain postrouting handle 3"}));
    // meta l4proto tcp snat to 198.19.0.6:5000
    EXPECT_EQ(rules[2].ports, (PortRange{5000, 5000}));
    EXPECT_EQ(rules[2].proto, Proto::tcp);
    // snat to 198.19.0.7 fully-random,persistent: any transport
    EXPECT_EQ(rules[3].proto, std::nullopt);
    EXPECT_TRUE(rules[3].fully_random);
    EXPECT_TRUE(rules[3].persistent);
    EXPECT_FALSE(rules[3].random);
    // meta l4proto { tcp, udp } snat to 198.19.0.8:6000-6099
    EXPECT_EQ(rules[4].proto, std::nullopt);
    EXPECT_EQ(rules[4].ports, (PortRange{6000, 6099}));
}

TEST(NatRulesNft, Ip6MasqueradeAndSnatToARange) {
    std::vector<NatRule> expected = {{.family = Family::ipv6,
                                      .masquerade = true,
                                      .fully_random = true,
                                      .out_interface = "eth0",
                                      .where = "nft table ip6 nat6 chain postrouting handle 2"},
                                     {.family = Family::ipv6,
                                      .proto = Proto::tcp,
                                      .addresses = ips("2001:db8::1", "2001:db8::2"),
                                      .ports = PortRange{1000, 2000},
                                      .where = "nft table ip6 nat6 chain postrouting handle 3"}};
    EXPECT_EQ(nft_rules("ip6_masquerade.json"), expected);
}

TEST(NatRulesNft, InetTableFamilyFromTheMatchesOrTheStatement) {
    std::vector<NatRule> rules = nft_rules("inet_nat.json");
    // The prerouting chain's dnat and redirect are not source NAT.
    ASSERT_EQ(rules.size(), 4u);
    // meta nfproto ipv4 udp dport 53 masquerade to :50000-50999 random
    EXPECT_EQ(rules[0], (NatRule{.family = Family::ipv4,
                                 .proto = Proto::udp,
                                 .masquerade = true,
                                 .ports = PortRange{50000, 50999},
                                 .random = true,
                                 .where = "nft table inet nat chain postrouting handle 5"}));
    // ip6 saddr fd00::/64 meta l4proto tcp snat ip6 to [2001:db8::9]:3000-3999
    EXPECT_EQ(rules[1].family, Family::ipv6);
    EXPECT_EQ(rules[1].addresses, ips("2001:db8::9", "2001:db8::9"));
    EXPECT_EQ(rules[1].ports, (PortRange{3000, 3999}));
    // ip saddr 198.18.0.0/15 snat ip to 198.19.0.1
    EXPECT_EQ(rules[2].family, Family::ipv4);
    EXPECT_EQ(rules[2].proto, std::nullopt);
    EXPECT_EQ(rules[2].ports, std::nullopt);
    // oifname != "lo" masquerade: both families, any transport
    EXPECT_EQ(rules[3], (NatRule{.masquerade = true,
                                 .out_interface = "lo",
                                 .out_interface_negated = true,
                                 .where = "nft table inet nat chain postrouting handle 8"}));
}

TEST(NatRulesNft, KubeProxyNftablesModeMasqueradesFullyRandomInAJumpedToChain) {
    std::vector<NatRule> expected = {
        {.family = Family::ipv4,
         .masquerade = true,
         .fully_random = true,
         .where = "nft table ip kube-proxy chain masquerading handle 8"}};
    EXPECT_EQ(nft_rules("kube_proxy_nftables.json"), expected);
}

TEST(NatRulesNft, IptablesNftRulesAreXtExpressionsAndSkipped) {
    // Their MASQUERADE and SNAT targets show as {"xt": {"type": "target", ...}} without options.
    // Each is counted: the reader can say they were left to iptables-nft-save.
    for (auto [name, xt_nat_rules] : {std::pair{"kube_proxy.xt.json", 2u},
                                      {"docker.xt.json", 3u},
                                      {"docker6.xt.json", 2u},
                                      {"snat_ranges.xt.json", 5u}}) {
        std::size_t counted = 99;
        Result<std::vector<NatRule>> rules = nat_rules_from_nft_json(captured(name), &counted);
        ASSERT_TRUE(rules.ok()) << name << ": " << rules.error();
        EXPECT_EQ(*rules, std::vector<NatRule>{}) << name;
        EXPECT_EQ(counted, xt_nat_rules) << name;
    }
    std::size_t none = 99;
    ASSERT_TRUE(nat_rules_from_nft_json(captured("masq_range.json"), &none).ok());
    EXPECT_EQ(none, 0u);
}

TEST(NatRulesNft, AnAddressMapFailsNamingTheRule) {
    Result<std::vector<NatRule>> rules = nat_rules_from_nft_json(captured("snat_map.json"));
    ASSERT_FALSE(rules.ok());
    EXPECT_NE(rules.error().find("nft table ip nat chain postrouting handle 4"), std::string::npos)
        << rules.error();
    EXPECT_NE(rules.error().find("snat"), std::string::npos) << rules.error();
    EXPECT_NE(rules.error().find("map"), std::string::npos) << rules.error();
}

TEST(NatRulesNft, NotJsonOrNotNftsJsonFails) {
    for (const char *text : {"", "hello", "table ip t {", "[1, 2]", "{\"foo\": []}",
                             "{\"nftables\": {}}", "\"nftables\""}) {
        Result<std::vector<NatRule>> rules = nat_rules_from_nft_json(text);
        EXPECT_FALSE(rules.ok()) << text;
        EXPECT_NE(rules.error().find("nft -j"), std::string::npos) << rules.error();
    }
}

TEST(NatRulesNft, TruncatedJsonFails) {
    std::string whole = captured("snat_two_addresses.json");
    for (std::size_t length : {whole.size() / 3, whole.size() / 2, whole.size() - 3}) {
        Result<std::vector<NatRule>> rules = nat_rules_from_nft_json(whole.substr(0, length));
        EXPECT_FALSE(rules.ok()) << length;
        EXPECT_NE(rules.error().find("not JSON"), std::string::npos) << rules.error();
    }
}

std::string one_rule(const std::string &statements) {
    return R"({"nftables": [{"rule": {"family": "ip", "table": "t", "chain": "c", "handle": 7,
               "expr": [)" +
           statements + "]}}]}";
}

TEST(NatRulesNft, StatementsThatAreNotSourceNatAreSkipped) {
    Result<std::vector<NatRule>> rules = nat_rules_from_nft_json(
        one_rule(R"({"frobnicate": {"x": 1}}, {"dnat": {"addr": "1.2.3.4"}}, {"counter": null})"));
    ASSERT_TRUE(rules.ok()) << rules.error();
    EXPECT_TRUE(rules->empty());
    // A table of another family never translates IP sources.
    rules = nat_rules_from_nft_json(
        R"({"nftables": [{"rule": {"family": "bridge", "table": "t", "chain": "c",
            "expr": [{"masquerade": null}]}}]})");
    ASSERT_TRUE(rules.ok()) << rules.error();
    EXPECT_TRUE(rules->empty());
}

TEST(NatRulesNft, UnreadableNatStatementShapesFailNamingTheRule) {
    for (const char *statement :
         {R"({"masquerade": {"port": {"map": {"key": "x"}}}})",
          R"({"masquerade": {"port": 70000}})", R"({"masquerade": {"port": {"range": [1]}}})",
          R"({"masquerade": {"flags": 4}})", R"({"masquerade": 5})",
          R"({"snat": {"addr": "not-an-address"}})", R"({"snat": {"addr": "2001:db8::1"}})",
          R"({"snat": {"addr": {"range": ["198.19.0.9", "198.19.0.1"]}}})",
          R"({"snat": {"family": "arp", "addr": "198.19.0.1"}})", R"({"masquerade": 1, "x": 2})"}) {
        Result<std::vector<NatRule>> rules = nat_rules_from_nft_json(one_rule(statement));
        ASSERT_FALSE(rules.ok()) << statement;
        EXPECT_NE(rules.error().find("nft table ip t chain c handle 7"), std::string::npos)
            << rules.error();
    }
}

TEST(NatRulesNft, MembersOfUnexpectedTypesFailNotThrow) {
    for (const std::string &text :
         {one_rule(R"({"match": {"op": 5, "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}},
                      {"masquerade": null})"),
          one_rule(R"({"match": {"op": "==", "left": {"meta": {"key": 1}}, "right": "tcp"}},
                      {"masquerade": null})"),
          std::string(R"({"nftables": [{"rule": {"family": 4, "expr": [{"masquerade": null}]}}]})"),
          std::string(R"({"nftables": [{"rule": {"family": "ip", "table": [], "chain": "c",
                          "expr": [{"masquerade": null}]}}]})"),
          std::string(R"({"nftables": [{"rule": {"family": "ip", "expr": [{"xt": {"type": 1}},
                          {"masquerade": null}]}}]})")}) {
        Result<std::vector<NatRule>> rules = Failure{"threw"};
        EXPECT_NO_THROW(rules = nat_rules_from_nft_json(text)) << text;
        EXPECT_FALSE(rules.ok()) << text;
        EXPECT_NE(rules.error().find("nft -j: not nft's JSON"), std::string::npos) << rules.error();
    }
}

TEST(NatRulesNft, RulesForOtherTransportsOrBothFamiliesAtOnceAreSkipped) {
    for (const char *matches :
         {R"({"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "icmp"}})",
          R"({"match": {"op": "==", "left": {"payload": {"protocol": "sctp", "field": "dport"}},
              "right": 9}})",
          R"({"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}},
              "right": "::1"}})"}) {
        Result<std::vector<NatRule>> rules =
            nat_rules_from_nft_json(one_rule(std::string(matches) + R"(, {"masquerade": null})"));
        ASSERT_TRUE(rules.ok()) << rules.error();
        EXPECT_TRUE(rules->empty()) << matches;
    }
}

TEST(NatRulesNft, ANamedSetOfTransportsNarrowsNothing) {
    Result<std::vector<NatRule>> rules = nat_rules_from_nft_json(one_rule(
        R"({"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "@protos"}},
           {"masquerade": {"port": {"range": [1000, 1999]}}})"));
    ASSERT_TRUE(rules.ok()) << rules.error();
    ASSERT_EQ(rules->size(), 1u);
    EXPECT_EQ(rules->front().proto, std::nullopt);
    EXPECT_EQ(rules->front().ports, (PortRange{1000, 1999}));
}

TEST(NatRulesNft, SnatToAPrefixIsItsWholeRange) {
    Result<std::vector<NatRule>> rules = nat_rules_from_nft_json(
        one_rule(R"({"snat": {"addr": {"prefix": {"addr": "198.19.0.5", "len": 30}}}})"));
    ASSERT_TRUE(rules.ok()) << rules.error();
    ASSERT_EQ(rules->size(), 1u);
    EXPECT_EQ(rules->front().addresses, ips("198.19.0.4", "198.19.0.7"));
}

// ---- iptables-save -t nat ----------------------------------------------------------------

TEST(NatRulesIptablesSave, KubeProxyMasqueradesFullyRandomInKubePostrouting) {
    std::vector<NatRule> expected = {{.family = Family::ipv4,
                                      .masquerade = true,
                                      .fully_random = true,
                                      .where = "iptables -t nat POSTROUTING rule 2"},  // flanneld's
                                     {.family = Family::ipv4,
                                      .masquerade = true,
                                      .fully_random = true,
                                      .where = "iptables -t nat KUBE-POSTROUTING rule 3"}};
    EXPECT_EQ(save_rules("kube_proxy.nft-save.txt", Family::ipv4), expected);
    EXPECT_EQ(save_rules("kube_proxy.legacy-save.txt", Family::ipv4), expected);
}

TEST(NatRulesIptablesSave, DockerMasqueradesEachBridgesSubnetOutOfOtherInterfaces) {
    std::vector<NatRule> expected = {{.family = Family::ipv4,
                                      .masquerade = true,
                                      .out_interface = "docker0",
                                      .out_interface_negated = true,
                                      .where = "iptables -t nat POSTROUTING rule 1"},
                                     {.family = Family::ipv4,
                                      .masquerade = true,
                                      .out_interface = "br-3f1c2a9d7e01",
                                      .out_interface_negated = true,
                                      .where = "iptables -t nat POSTROUTING rule 2"},
                                     {.family = Family::ipv4,
                                      .proto = Proto::tcp,
                                      .masquerade = true,
                                      .where = "iptables -t nat POSTROUTING rule 3"}};
    EXPECT_EQ(save_rules("docker.nft-save.txt", Family::ipv4), expected);
    EXPECT_EQ(save_rules("docker.legacy-save.txt", Family::ipv4), expected);
}

TEST(NatRulesIptablesSave, SnatAndMasqueradeWithRangesAndFlags) {
    std::vector<NatRule> expected = {{.family = Family::ipv4,
                                      .proto = Proto::udp,
                                      .addresses = ips("198.19.0.1", "198.19.0.2"),
                                      .ports = PortRange{20000, 20999},
                                      .persistent = true,
                                      .out_interface = "eth1",
                                      .where = "iptables -t nat POSTROUTING rule 1"},
                                     {.family = Family::ipv4,
                                      .proto = Proto::tcp,
                                      .addresses = ips("198.19.0.5", "198.19.0.5"),
                                      .random = true,
                                      .where = "iptables -t nat POSTROUTING rule 2"},
                                     {.family = Family::ipv4,
                                      .proto = Proto::tcp,
                                      .addresses = ips("198.19.0.6", "198.19.0.6"),
                                      .ports = PortRange{5000, 5000},
                                      .fully_random = true,
                                      .where = "iptables -t nat POSTROUTING rule 3"},
                                     {.family = Family::ipv4,
                                      .proto = Proto::tcp,
                                      .masquerade = true,
                                      .ports = PortRange{30000, 30099},
                                      .out_interface = "eth+",
                                      .where = "iptables -t nat POSTROUTING rule 4"},
                                     {.family = Family::ipv4,
                                      .proto = Proto::udp,
                                      .masquerade = true,
                                      .ports = PortRange{30100, 30100},
                                      .random = true,
                                      .where = "iptables -t nat POSTROUTING rule 5"}};
    EXPECT_EQ(save_rules("snat_ranges.nft-save.txt", Family::ipv4), expected);
    EXPECT_EQ(save_rules("snat_ranges.legacy-save.txt", Family::ipv4), expected);
}

TEST(NatRulesIptablesSave, Ip6tablesMasqueradeAndBracketedSnat) {
    std::vector<NatRule> expected = {{.family = Family::ipv6,
                                      .masquerade = true,
                                      .out_interface = "docker0",
                                      .out_interface_negated = true,
                                      .where = "ip6tables -t nat POSTROUTING rule 1"},
                                     {.family = Family::ipv6,
                                      .proto = Proto::tcp,
                                      .addresses = ips("2001:db8::1", "2001:db8::2"),
                                      .ports = PortRange{1000, 2000},
                                      .where = "ip6tables -t nat POSTROUTING rule 2"}};
    EXPECT_EQ(save_rules("docker6.nft-save.txt", Family::ipv6), expected);
    EXPECT_EQ(save_rules("docker6.legacy-save.txt", Family::ipv6), expected);
}

TEST(NatRulesIptablesSave, EmptyTextAndOtherTablesHaveNoRules) {
    EXPECT_EQ(save_rules("docker.rules", Family::ipv4).size(), 3u);  // restore's input too
    Result<std::vector<NatRule>> rules = nat_rules_from_iptables_save("", Family::ipv4);
    ASSERT_TRUE(rules.ok()) << rules.error();
    EXPECT_TRUE(rules->empty());
    rules = nat_rules_from_iptables_save(
        "*mangle\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n", Family::ipv4);
    ASSERT_TRUE(rules.ok()) << rules.error();
    EXPECT_TRUE(rules->empty());
}

TEST(NatRulesIptablesSave, ANativeNftNatTableIsAnEmptyTableToIptablesNftSave) {
    // snat_two_addresses.nft's `table ip nat`: iptables-nft-save shows no rule of it (nft's
    // JSON does), with a comment line, not an error.
    std::string text = captured("native_nat_table.nft-save.txt");
    ASSERT_NE(text.find("incompatible"), std::string::npos);
    EXPECT_EQ(save_rules("native_nat_table.nft-save.txt", Family::ipv4), std::vector<NatRule>{});
}

TEST(NatRulesIptablesSave, NegatedProtocolLeavesTheOther) {
    Result<std::vector<NatRule>> rules = nat_rules_from_iptables_save(
        "*nat\n-A POSTROUTING ! -p tcp -j MASQUERADE\n-A POSTROUTING -p icmp -j MASQUERADE\n"
        "-A POSTROUTING -m comment --comment \"-o \\\"x\\\" -p udp\" -j MASQUERADE\nCOMMIT\n",
        Family::ipv4);
    ASSERT_TRUE(rules.ok()) << rules.error();
    ASSERT_EQ(rules->size(), 2u);  // the ICMP one cannot translate TCP or UDP
    EXPECT_EQ(rules->at(0).proto, Proto::udp);
    EXPECT_EQ(rules->at(1).proto, std::nullopt);  // the comment's words are not options
    EXPECT_EQ(rules->at(1).out_interface, "");
    EXPECT_EQ(rules->at(1).where, "iptables -t nat POSTROUTING rule 3");
}

TEST(NatRulesIptablesSave, TruncatedTextFails) {
    std::string whole = captured("kube_proxy.nft-save.txt");
    std::size_t comment = whole.find("\"kubernetes service traffic");
    for (std::size_t length : {whole.find("COMMIT"), comment + 10, whole.size() / 2}) {
        Result<std::vector<NatRule>> rules =
            nat_rules_from_iptables_save(whole.substr(0, length), Family::ipv4);
        EXPECT_FALSE(rules.ok()) << length;
        EXPECT_NE(rules.error().find("iptables-save"), std::string::npos) << rules.error();
    }
}

TEST(NatRulesIptablesSave, UnreadableLinesFailNamingTheLine) {
    for (const char *text :
         {"*nat\n-A POSTROUTING -j SNAT --to-source 1.2.3\nCOMMIT\n",
          "*nat\n-A POSTROUTING -j SNAT --to-source 1.2.3.9-1.2.3.1\nCOMMIT\n",
          "*nat\n-A POSTROUTING -p tcp -j MASQUERADE --to-ports 80000\nCOMMIT\n",
          "*nat\n-A POSTROUTING -p tcp -j MASQUERADE --to-ports\nCOMMIT\n",
          "*nat\n-A POSTROUTING -o\nCOMMIT\n", "*nat\nhello\nCOMMIT\n",
          "-A POSTROUTING -j MASQUERADE\n", "*nat\n*filter\nCOMMIT\n", "COMMIT\n",
          "*nat\n-A POSTROUTING -m comment --comment \"open -j MASQUERADE\nCOMMIT\n"}) {
        Result<std::vector<NatRule>> rules = nat_rules_from_iptables_save(text, Family::ipv4);
        ASSERT_FALSE(rules.ok()) << text;
        EXPECT_NE(rules.error().find("iptables-save line"), std::string::npos) << rules.error();
    }
    Result<std::vector<NatRule>> rules = nat_rules_from_iptables_save(
        "*nat\n-A POSTROUTING -j SNAT --to-source [2001:db8::1:1000\nCOMMIT\n", Family::ipv6);
    ASSERT_FALSE(rules.ok());
    EXPECT_NE(rules.error().find("ip6tables-save line 2: POSTROUTING rule 1: --to-source"),
              std::string::npos)
        << rules.error();
}

// ---- the range of a mapping --------------------------------------------------------------

TEST(NatPortRange, TheKernelsDefaultByOriginalPort) {
    EXPECT_EQ(default_nat_port_range(1), (PortRange{1, 511}));
    EXPECT_EQ(default_nat_port_range(511), (PortRange{1, 511}));
    EXPECT_EQ(default_nat_port_range(512), (PortRange{600, 1023}));
    EXPECT_EQ(default_nat_port_range(1023), (PortRange{600, 1023}));
    EXPECT_EQ(default_nat_port_range(1024), (PortRange{1024, 65535}));
    EXPECT_EQ(default_nat_port_range(60999), (PortRange{1024, 65535}));
    EXPECT_EQ(default_nat_port_range(1024).size(), 64512u);
}

TEST(NatPortRange, TheRulesRangeWhenItCouldHaveMadeTheMapping) {
    std::vector<NatRule> rules = nft_rules("masq_range.json");
    NatPortRange tcp = nat_port_range(rules, Proto::tcp, ip("198.19.0.1"), 42710, 40003);
    EXPECT_EQ(tcp.range, (PortRange{40000, 40009}));
    EXPECT_TRUE(tcp.from_rule);
    EXPECT_EQ(tcp.where, "nft table ip t chain post handle 2");
    NatPortRange udp = nat_port_range(rules, Proto::udp, ip("198.19.0.1"), 5353, 40010);
    EXPECT_EQ(udp.range, (PortRange{40010, 40010}));
    EXPECT_EQ(udp.where, "nft table ip t chain post handle 3");
    // A port outside both ranges was not translated by them: the kernel's default.
    NatPortRange other = nat_port_range(rules, Proto::udp, ip("198.19.0.1"), 5353, 5353);
    EXPECT_EQ(other.range, (PortRange{1024, 65535}));
    EXPECT_FALSE(other.from_rule);
    EXPECT_EQ(other.where, "");
    // No IPv6 rule: the default.
    EXPECT_FALSE(nat_port_range(rules, Proto::tcp, ip("2001:db8::1"), 42710, 40003).from_rule);
}

TEST(NatPortRange, AddressesSelectTheRule) {
    std::vector<NatRule> rules = nft_rules("snat_two_addresses.json");
    NatPortRange second = nat_port_range(rules, Proto::udp, ip("198.19.0.2"), 41000, 20500);
    EXPECT_EQ(second.range, (PortRange{20000, 20999}));
    EXPECT_EQ(second.where, "nft table ip nat chain postrouting handle 2");
    // 198.19.0.5's rule gives no range: the default, by the original port, from that rule.
    NatPortRange no_range = nat_port_range(rules, Proto::tcp, ip("198.19.0.5"), 700, 650);
    EXPECT_EQ(no_range.range, (PortRange{600, 1023}));
    EXPECT_TRUE(no_range.from_rule);
    EXPECT_EQ(no_range.where, "nft table ip nat chain postrouting handle 3");
    // No rule translates to 198.19.0.3.
    NatPortRange none = nat_port_range(rules, Proto::tcp, ip("198.19.0.3"), 100, 100);
    EXPECT_EQ(none.range, (PortRange{1, 511}));
    EXPECT_FALSE(none.from_rule);
    // The {tcp, udp} rule serves both.
    EXPECT_EQ(nat_port_range(rules, Proto::udp, ip("198.19.0.8"), 50000, 6050).range,
              (PortRange{6000, 6099}));
}

TEST(NatPortRange, KubeProxysMasqueradeIsTheWholeDefaultRange) {
    std::vector<NatRule> rules = save_rules("kube_proxy.nft-save.txt", Family::ipv4);
    NatPortRange range = nat_port_range(rules, Proto::tcp, ip("10.0.0.7"), 45678, 12345);
    EXPECT_EQ(range.range.size(), 64512u);
    EXPECT_TRUE(range.from_rule);
    EXPECT_EQ(range.where, "iptables -t nat POSTROUTING rule 2");
}

TEST(NatPortRange, FirstRuleInOrderWins) {
    std::vector<NatRule> rules = nft_rules("inet_nat.json");
    // UDP to 50500 over IPv4: the DNS rule's range (first), not the bare masquerade.
    NatPortRange dns = nat_port_range(rules, Proto::udp, ip("198.19.0.1"), 33000, 50500);
    EXPECT_EQ(dns.range, (PortRange{50000, 50999}));
    // TCP over IPv4 to 198.19.0.1: the snat rule (handle 7) before the masquerade (handle 8).
    NatPortRange tcp = nat_port_range(rules, Proto::tcp, ip("198.19.0.1"), 33000, 33000);
    EXPECT_EQ(tcp.where, "nft table inet nat chain postrouting handle 7");
    // IPv6 TCP from 2001:db8::9 in 3000-3999: the snat ip6 rule.
    EXPECT_EQ(nat_port_range(rules, Proto::tcp, ip("2001:db8::9"), 40000, 3500).range,
              (PortRange{3000, 3999}));
    // IPv6 UDP from another address: the inet masquerade, with the default range.
    NatPortRange masquerade = nat_port_range(rules, Proto::udp, ip("fd00::1"), 40000, 40000);
    EXPECT_EQ(masquerade.where, "nft table inet nat chain postrouting handle 8");
    EXPECT_EQ(masquerade.range, (PortRange{1024, 65535}));
}

TEST(NatRules, ParseIpAddressInAFamilyOrEither) {
    EXPECT_EQ(ip("198.19.0.1").family, Family::ipv4);
    EXPECT_EQ(ip("198.19.0.1").bytes[3], 1);
    EXPECT_EQ(ip("2001:db8::1").family, Family::ipv6);
    EXPECT_EQ(ip("2001:db8::1").bytes[15], 1);
    EXPECT_EQ(parse_ip_address("198.19.0.1", Family::ipv6), std::nullopt);
    EXPECT_EQ(parse_ip_address("::1", Family::ipv4), std::nullopt);
    EXPECT_EQ(parse_ip_address(""), std::nullopt);
    EXPECT_EQ(parse_ip_address("1.2.3.4 "), std::nullopt);
}

}  // namespace
}  // namespace portwatch
