// SPDX-License-Identifier: Apache-2.0
// `portwatch monitor --json` on a node whose NAT hands out the ports of a pod's connections
// (nat_topology.h): the NAT scopes, their capacity from the node's rules, the pod's process
// behind them, the warnings before the drops and the drops themselves, each checked against
// the node's conntrack table and statistics as the `conntrack` tool reads them.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kernel_support.h"
#include "monitor_log.h"
#include "nat_topology.h"
#include "output/value_text.h"

namespace portwatch::test {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

constexpr std::size_t kRuleRange = 10;  // masquerade_ruleset()'s 40000-40009

class NatMonitorTest : public RootTest {
  protected:
    NatMonitorTest() : RootTest("NAT tests need root (netns, veth, nft, conntrack)") {}
};

// The node's NAT scopes in the monitor's final report.
std::vector<Json> nat_scopes(const std::vector<Json> &lines) {
    std::vector<Json> scopes;
    if (const Json *report = report_of(lines))
        for (const Json &scope : (*report)["scopes"])
            if (scope["scope"] == "nat") scopes.push_back(scope);
    return scopes;
}

std::string address_text(const IpAddress &address) {
    return portwatch::to_string(address);
}

std::string dump(const std::vector<Json> &lines) {
    std::string text;
    for (const Json &line : lines) text += line.dump() + "\n";
    return text;
}

// The first warning of `level` that a NAT scope's count raised. (A drop no full scope explains
// is said apart, naming no destination: 5.10 counts one at a pod's first connection.)
int first_filling(const std::vector<Json> &lines, const char *level) {
    for (std::size_t i = 0; i < lines.size(); i++)
        if (lines[i].value("type", "") == "warning" && lines[i]["level"] == level &&
            lines[i]["scope"] == "nat" && lines[i]["reason"] == "utilization")
            return int(i);
    return -1;
}

// Drops are read once a second; the last SYN retries of the connects that timed out are
// counted by then.
void let_the_drops_be_read() {
    std::this_thread::sleep_for(2500ms);
}

TEST_F(NatMonitorTest, ARangeOfHeldConnectionsWarnsBeforeItDropsAndNamesThePod) {
    NatTopology topology;
    ASSERT_TRUE(topology.nft(masquerade_ruleset("ip", "tcp")));
    ConntrackStats before = topology.conntrack_stats();
    MonitorLog log;
    std::vector<PodSocket> socks = topology.hold_tcp(1, 12, 1500ms);
    ASSERT_EQ(connected(socks), 10);
    let_the_drops_be_read();
    ConntrackStats after = topology.conntrack_stats();
    std::vector<ConntrackEntry> table = topology.conntrack();
    auto lines = log.stop_and_collect(topology.node().inode());

    int warning = first_filling(lines, "warning");
    int critical = first_filling(lines, "critical");
    ASSERT_GE(warning, 0) << dump(lines);
    ASSERT_GE(critical, 0) << dump(lines);
    EXPECT_LT(warning, critical);
    const Json &warned = lines[warning];
    EXPECT_EQ(warned["in_use"], 8) << "80 % of the rule's 10 ports";
    EXPECT_EQ(warned["capacity"], kRuleRange);
    EXPECT_EQ(warned["proto"], "tcp");
    EXPECT_EQ(warned["local_addr"], address_text(NatTopology::node_outside_address(Family::ipv4)));
    EXPECT_EQ(warned["remote_addr"], address_text(NatTopology::server_address(Family::ipv4)));
    EXPECT_EQ(warned["remote_port"], NatTopology::kServerTcpPort);
    ASSERT_FALSE(warned["top_processes"].empty());
    EXPECT_EQ(warned["top_processes"][0]["pid"], getpid());
    EXPECT_EQ(warned["causes"][0]["cause"], "nat_port_range");
    EXPECT_EQ(lines[critical]["in_use"], kRuleRange);

    // the drops: the kernel's count, and a critical warning saying so
    std::uint64_t dropped = after.insert_failed - before.insert_failed;
    EXPECT_GE(dropped, 2u) << "the kernel's own count (conntrack -S)";
    auto drop_line = std::find_if(lines.begin(), lines.end(), [](const Json &line) {
        return line.value("reason", "") == "nat_drops" && line["level"] == "critical";
    });
    ASSERT_NE(drop_line, lines.end()) << dump(lines);
    EXPECT_EQ((*drop_line)["level"], "critical");
    EXPECT_GE((*drop_line)["nat_drops"].get<std::uint64_t>(), 1u);
    const Json *report = report_of(lines);
    ASSERT_NE(report, nullptr);
    EXPECT_EQ((*report)["nat_drops"], dropped);

    std::vector<Json> scopes = nat_scopes(lines);
    ASSERT_EQ(scopes.size(), 1u) << dump(lines);
    EXPECT_EQ(scopes[0]["in_use"], table.size()) << "as many as conntrack -L lists";
}

TEST_F(NatMonitorTest, MasqueradeWithoutARangeHasTheKernelsDefaultCapacity) {
    NatTopology topology;
    ASSERT_TRUE(topology.nft(masquerade_ruleset("ip", "tcp", "")));
    MonitorLog log;
    ASSERT_EQ(connected(topology.hold_tcp(1, 3, 1500ms)), 3);
    std::vector<ConntrackEntry> table = topology.conntrack();
    std::this_thread::sleep_for(300ms);
    auto lines = log.stop_and_collect(topology.node().inode());
    std::vector<Json> scopes = nat_scopes(lines);
    ASSERT_EQ(scopes.size(), 1u) << dump(lines);
    EXPECT_EQ(scopes[0]["capacity"], 65535 - 1024 + 1);
    EXPECT_EQ(scopes[0]["in_use"], table.size());
    EXPECT_EQ(scopes[0]["level"], "ok");
}

TEST_F(NatMonitorTest, MappingsMadeBeforeTheStartAreReadFromTheTable) {
    NatTopology topology;
    ASSERT_TRUE(topology.nft(masquerade_ruleset("ip", "tcp")));
    ASSERT_EQ(connected(topology.hold_tcp(1, 5, 1500ms)), 5);
    std::vector<ConntrackEntry> table = topology.conntrack();
    MonitorLog log;
    auto lines = log.stop_and_collect(topology.node().inode());
    std::vector<Json> scopes = nat_scopes(lines);
    ASSERT_EQ(scopes.size(), 1u) << dump(lines);
    EXPECT_EQ(scopes[0]["in_use"], table.size());
    EXPECT_EQ(scopes[0]["capacity"], kRuleRange);
    ASSERT_FALSE(scopes[0]["top_processes"].empty());
    EXPECT_EQ(scopes[0]["top_processes"][0]["pid"], getpid())
        << "joined through the socket tables' owners";
}

// Each address of `snat to A-B` is a scope of its own: a client keeps one address per
// destination (nf_nat_core.c, find_best_ips_proto()).
TEST_F(NatMonitorTest, SnatToTwoAddressesMakesAScopePerAddress) {
    NatTopology topology(4);
    topology.add_outside_address("198.19.0.10");
    topology.add_outside_address("198.19.0.11");
    ASSERT_TRUE(
        topology.nft("table ip pw_nat {\n chain post {\n  type nat hook postrouting priority "
                     "100;\n  oifname \"" +
                     std::string(NatTopology::kOutside) +
                     "\" meta l4proto tcp snat to 198.19.0.10-198.19.0.11:40000-40009\n }\n}\n"));
    MonitorLog log;
    for (int pod = 1; pod <= 4; pod++) ASSERT_EQ(connected(topology.hold_tcp(pod, 2, 1500ms)), 2);
    std::vector<ConntrackEntry> table = topology.conntrack();
    std::this_thread::sleep_for(300ms);
    auto lines = log.stop_and_collect(topology.node().inode());
    std::map<std::string, std::size_t> by_address;  // the kernel's
    for (const ConntrackEntry &entry : table) by_address[address_text(entry.nat().addr)]++;
    std::map<std::string, std::size_t> scoped;  // the monitor's
    for (const Json &scope : nat_scopes(lines)) {
        scoped[scope["local_addr"]] = scope["in_use"];
        EXPECT_EQ(scope["capacity"], kRuleRange);
    }
    EXPECT_EQ(scoped, by_address) << dump(lines);
}

TEST_F(NatMonitorTest, AUdpBurstThroughARangeIsCountedAndDropped) {
    NatTopology topology;
    ASSERT_TRUE(topology.nft(masquerade_ruleset("ip", "udp")));
    ConntrackStats before = topology.conntrack_stats();
    MonitorLog log;
    std::vector<PodSocket> socks = topology.udp_burst(1, 12, 1000ms);
    ASSERT_EQ(connected(socks), 10);
    let_the_drops_be_read();
    ConntrackStats after = topology.conntrack_stats();
    std::vector<ConntrackEntry> table = topology.conntrack();
    auto lines = log.stop_and_collect(topology.node().inode());
    int critical = first_filling(lines, "critical");
    ASSERT_GE(critical, 0) << dump(lines);
    EXPECT_EQ(lines[critical]["proto"], "udp");
    EXPECT_EQ(lines[critical]["remote_port"], NatTopology::kServerUdpPort);
    const Json *report = report_of(lines);
    ASSERT_NE(report, nullptr);
    EXPECT_EQ((*report)["nat_drops"], after.insert_failed - before.insert_failed);
    std::vector<Json> scopes = nat_scopes(lines);
    ASSERT_EQ(scopes.size(), 1u);
    EXPECT_EQ(scopes[0]["in_use"], table.size());
}

TEST_F(NatMonitorTest, IPv6MasqueradeIsAScopeOfIPv6Addresses) {
    NatTopology topology;
    ASSERT_TRUE(topology.nft(masquerade_ruleset("ip6", "tcp")));
    MonitorLog log;
    ASSERT_EQ(connected(topology.hold_tcp(1, 9, 1500ms, Family::ipv6)), 9);
    std::this_thread::sleep_for(300ms);
    auto lines = log.stop_and_collect(topology.node().inode());
    int warning = first_filling(lines, "warning");
    ASSERT_GE(warning, 0) << dump(lines);
    EXPECT_EQ(lines[warning]["local_addr"],
              address_text(NatTopology::node_outside_address(Family::ipv6)));
    EXPECT_EQ(lines[warning]["remote_addr"],
              address_text(NatTopology::server_address(Family::ipv6)));
    EXPECT_EQ(lines[warning]["capacity"], kRuleRange);
    EXPECT_EQ(lines[warning]["top_processes"][0]["pid"], getpid());
}

TEST_F(NatMonitorTest, SnapshotShowsTheNatScopes) {
    NatTopology topology;
    ASSERT_TRUE(topology.nft(masquerade_ruleset("ip", "tcp")));
    ASSERT_EQ(connected(topology.hold_tcp(1, 4, 1500ms)), 4);
    std::vector<ConntrackEntry> table = topology.conntrack();
    Monitor snapshot({"snapshot", "--json"});
    std::vector<Json> scopes;
    for (std::string line = snapshot.next_line(); !line.empty(); line = snapshot.next_line()) {
        Json object = Json::parse(line);
        if (object["type"] != "report") continue;
        for (const Json &ns : object["netns"])
            if (ns["netns"] == topology.node().inode())
                for (const Json &scope : ns["scopes"])
                    if (scope["scope"] == "nat") scopes.push_back(scope);
    }
    EXPECT_EQ(snapshot.wait_exit_code(), 0);
    ASSERT_EQ(scopes.size(), 1u);
    EXPECT_EQ(scopes[0]["in_use"], table.size());
    EXPECT_EQ(scopes[0]["capacity"], kRuleRange);
    EXPECT_EQ(scopes[0]["top_processes"][0]["pid"], getpid());
}

TEST_F(NatMonitorTest, AnIptablesRulesRangeIsTheCapacity) {
    NatTopology topology;
    ASSERT_TRUE(
        topology.iptables({"-t nat -A POSTROUTING -o " + std::string(NatTopology::kOutside) +
                           " -p tcp -j MASQUERADE --to-ports 40000-40009"}));
    MonitorLog log;
    ASSERT_EQ(connected(topology.hold_tcp(1, 2, 1500ms)), 2);
    std::this_thread::sleep_for(300ms);
    auto lines = log.stop_and_collect(topology.node().inode());
    std::vector<Json> scopes = nat_scopes(lines);
    ASSERT_EQ(scopes.size(), 1u) << dump(lines);
    EXPECT_EQ(scopes[0]["capacity"], kRuleRange);
    EXPECT_EQ(scopes[0]["in_use"], 2);
}

}  // namespace
}  // namespace portwatch::test
