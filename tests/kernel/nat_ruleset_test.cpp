// SPDX-License-Identifier: Apache-2.0
// read_nat_ruleset() against real rules: each test loads a ruleset of tests/unit/nat_rules/
// into a fresh network namespace with the real tools (through nsenter, not the code under
// test), then checks that what was read is what that text says.
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "kernel_support.h"
#include "system/nat_ruleset.h"

namespace portwatch::test {
namespace {

const std::string kRulesDir = PORTWATCH_SOURCE_DIR "/tests/unit/nat_rules/";

class NatRulesetTest : public RootTest {
  protected:
    NatRulesetTest() : RootTest("NAT ruleset tests need root (setns, nft, iptables)") {}

    void SetUp() override {
        RootTest::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        for (const char *tool : {"nft", "iptables-nft-restore", "iptables-legacy-restore",
                                 "ip6tables-nft-restore", "nsenter"}) {
            if (std::system(("command -v " + std::string(tool) + " >/dev/null").c_str()) == 0)
                continue;
            std::string why = std::string(tool) + " is not installed";
            if (running_in_ci()) FAIL() << why;
            GTEST_SKIP() << why;
        }
    }

    // What `command` printed, run inside `netns` by nsenter; the test fails if it fails.
    static std::string in_netns(const Netns &netns, const std::string &command) {
        std::string line = "nsenter --net=/proc/" + std::to_string(getpid()) + "/fd/" +
                           std::to_string(netns.fd()) + " " + command + " 2>&1";
        FILE *pipe = popen(line.c_str(), "r");
        std::string output;
        char chunk[4096];
        for (std::size_t got; pipe && (got = fread(chunk, 1, sizeof chunk, pipe)) > 0;)
            output.append(chunk, got);
        int status = pipe ? pclose(pipe) : -1;
        EXPECT_EQ(status, 0) << line << ": " << output;
        return output;
    }

    static NatRuleset read(const Netns &netns) {
        Result<NatRuleset> ruleset = read_nat_ruleset(netns.fd());
        EXPECT_TRUE(ruleset.ok()) << ruleset.error();
        return ruleset.value_or(NatRuleset{});
    }
};

const NatSource &source(const NatRuleset &ruleset, const std::string &tool) {
    for (const NatSource &source : ruleset.sources)
        if (source.tool == tool) return source;
    static const NatSource none{.tool = "(not in the list)"};
    ADD_FAILURE() << tool << " is not among the sources";
    return none;
}

std::vector<NatRule> rules_from(const NatRuleset &ruleset, const std::string &prefix) {
    std::vector<NatRule> found;
    for (const NatRule &rule : ruleset.rules)
        if (rule.where.starts_with(prefix)) found.push_back(rule);
    return found;
}

TEST_F(NatRulesetTest, NftRulesAreReadInsideTheirNamespaceOnly) {
    Netns node, other;
    in_netns(node, "nft -f " + kRulesDir + "masq_range.nft");
    NatRuleset ruleset = read(node);
    // masq_range.nft: oifname "veth-srv" meta l4proto tcp masquerade to :40000-40009
    //                 oifname "veth-srv" meta l4proto udp counter masquerade to :40010
    const NatSource &nft = source(ruleset, "nft");
    EXPECT_EQ(nft.state, NatSourceState::read) << describe(nft);
    EXPECT_EQ(nft.rules, 2u);
    EXPECT_EQ(describe(nft), "nft: read (" + nft.path + "), 2 NAT rules");
    std::vector<NatRule> rules = rules_from(ruleset, "nft table ip t chain post");
    ASSERT_EQ(rules.size(), 2u);
    EXPECT_EQ(rules[0].proto, Proto::tcp);
    EXPECT_EQ(rules[0].ports, (PortRange{40000, 40009}));
    EXPECT_EQ(rules[0].out_interface, "veth-srv");
    EXPECT_TRUE(rules[0].masquerade);
    EXPECT_EQ(rules[1].proto, Proto::udp);
    EXPECT_EQ(rules[1].ports, (PortRange{40010, 40010}));
    // Another namespace has none of them.
    NatRuleset elsewhere = read(other);
    EXPECT_EQ(source(elsewhere, "nft").state, NatSourceState::read);
    EXPECT_TRUE(elsewhere.rules.empty()) << describe(source(elsewhere, "nft"));
}

TEST_F(NatRulesetTest, Ip6AndInetNftRules) {
    Netns node;
    in_netns(node, "nft -f " + kRulesDir + "ip6_masquerade.nft");
    in_netns(node, "nft -f " + kRulesDir + "inet_nat.nft");
    NatRuleset ruleset = read(node);
    std::vector<NatRule> ip6 = rules_from(ruleset, "nft table ip6 nat6 chain postrouting");
    ASSERT_EQ(ip6.size(), 2u);
    // oifname "eth0" ip6 saddr fd00::/64 masquerade fully-random
    EXPECT_EQ(ip6[0].family, Family::ipv6);
    EXPECT_TRUE(ip6[0].fully_random);
    // meta l4proto tcp snat to [2001:db8::1]-[2001:db8::2]:1000-2000
    EXPECT_EQ(ip6[1].addresses,
              std::pair(*parse_ip_address("2001:db8::1"), *parse_ip_address("2001:db8::2")));
    EXPECT_EQ(ip6[1].ports, (PortRange{1000, 2000}));
    // inet_nat.nft's four postrouting rules; its prerouting dnat and redirect are not SNAT.
    EXPECT_EQ(rules_from(ruleset, "nft table inet nat chain postrouting").size(), 4u);
    EXPECT_TRUE(rules_from(ruleset, "nft table inet nat chain prerouting").empty());
    EXPECT_EQ(source(ruleset, "nft").rules, 6u);
}

TEST_F(NatRulesetTest, IptablesNftRulesAreReadFromSaveNotFromNft) {
    Netns node;
    in_netns(node, "iptables-nft-restore " + kRulesDir + "kube_proxy.rules");
    in_netns(node, "ip6tables-nft-restore " + kRulesDir + "docker6.rules");
    NatRuleset ruleset = read(node);
    // kube_proxy.rules: POSTROUTING's 2nd rule (flanneld) and KUBE-POSTROUTING's 3rd rule
    // are `-j MASQUERADE --random-fully`.
    const NatSource &v4 = source(ruleset, "iptables-nft-save");
    EXPECT_EQ(v4.state, NatSourceState::read) << describe(v4);
    EXPECT_EQ(v4.rules, 2u);
    std::vector<NatRule> kube = rules_from(ruleset, "iptables-nft -t nat KUBE-POSTROUTING rule 3");
    ASSERT_EQ(kube.size(), 1u);
    EXPECT_TRUE(kube[0].masquerade);
    EXPECT_TRUE(kube[0].fully_random);
    EXPECT_EQ(kube[0].ports, std::nullopt);
    EXPECT_EQ(rules_from(ruleset, "iptables-nft -t nat POSTROUTING rule 2").size(), 1u);
    // docker6.rules: -s fd00:1::/64 -p tcp -j SNAT --to-source [2001:db8::1-2001:db8::2]:1000-2000
    std::vector<NatRule> snat6 = rules_from(ruleset, "ip6tables-nft -t nat POSTROUTING rule 2");
    ASSERT_EQ(snat6.size(), 1u);
    EXPECT_EQ(snat6[0].ports, (PortRange{1000, 2000}));
    EXPECT_EQ(snat6[0].family, Family::ipv6);
    // nft sees these rules as xt targets without their options: none of its own.
    EXPECT_EQ(source(ruleset, "nft").state, NatSourceState::read);
    EXPECT_EQ(source(ruleset, "nft").rules, 0u);
    EXPECT_EQ(describe(source(ruleset, "nft")),  // the same four, said to be left
              "nft: read (" + source(ruleset, "nft").path +
                  "), 0 NAT rules, and 4 iptables-nft NAT rule(s) as xt targets "
                  "(iptables-nft-save's to read)");
    EXPECT_EQ(ruleset.rules.size(), 4u);
}

TEST_F(NatRulesetTest, LegacyTablesAreReadOnlyWhereTheyExistAndNeverMade) {
    Netns node;
    NatRuleset before = read(node);
    EXPECT_EQ(source(before, "iptables-legacy-save").state, NatSourceState::no_table)
        << describe(source(before, "iptables-legacy-save"));
    EXPECT_EQ(describe(source(before, "ip6tables-legacy-save")),
              "ip6tables-legacy-save: no legacy nat table in the namespace (not run: it would "
              "make one)");
    // The kernel's own list: reading did not create a legacy nat table.
    EXPECT_EQ(in_netns(node, "sh -c 'cat /proc/net/ip_tables_names 2>/dev/null; true'"), "");

    in_netns(node, "iptables-legacy-restore " + kRulesDir + "docker.rules");
    NatRuleset after = read(node);
    const NatSource &legacy = source(after, "iptables-legacy-save");
    EXPECT_EQ(legacy.state, NatSourceState::read) << describe(legacy);
    // docker.rules: three MASQUERADE rules in POSTROUTING, the first `! -o docker0`.
    EXPECT_EQ(legacy.rules, 3u);
    std::vector<NatRule> first = rules_from(after, "iptables-legacy -t nat POSTROUTING rule 1");
    ASSERT_EQ(first.size(), 1u);
    EXPECT_EQ(first[0].out_interface, "docker0");
    EXPECT_TRUE(first[0].out_interface_negated);
    // iptables-nft-save warns that legacy tables exist: kept, not an error.
    const NatSource &nft_save = source(after, "iptables-nft-save");
    EXPECT_EQ(nft_save.state, NatSourceState::read) << describe(nft_save);
}

// Shell scripts standing in for the tools, found first in PATH while this lives.
class FakeTools {
  public:
    explicit FakeTools(const std::vector<std::pair<std::string, std::string>> &scripts)
        : dir_("/tmp/portwatch-nat-tools-" + std::to_string(getpid())),
          path_(std::getenv("PATH") ? std::getenv("PATH") : "") {
        EXPECT_EQ(mkdir(dir_.c_str(), 0755), 0) << dir_;
        for (const auto &[name, body] : scripts) {
            std::ofstream(dir_ + "/" + name) << "#!/bin/sh\n" << body << "\n";
            EXPECT_EQ(chmod((dir_ + "/" + name).c_str(), 0755), 0) << name;
        }
        setenv("PATH", (dir_ + ":" + path_).c_str(), 1);
    }
    ~FakeTools() {
        setenv("PATH", path_.c_str(), 1);
        std::system(("rm -rf " + dir_).c_str());
    }

  private:
    std::string dir_, path_;
};

TEST_F(NatRulesetTest, AToolThatFailsOrPrintsNonsenseSaysWhy) {
    Netns node;
    FakeTools tools({{"nft", "echo 'Error: no nftables for you' >&2; exit 3"},
                     {"iptables-nft-save", "echo '*nat'; echo 'garbage'"},
                     {"ip6tables-nft-save", "sleep 5"}});
    Result<NatRuleset> ruleset = read_nat_ruleset(node.fd(), std::chrono::milliseconds(1000));
    ASSERT_TRUE(ruleset.ok()) << ruleset.error();
    EXPECT_EQ(describe(source(*ruleset, "nft")),
              "nft: failed: exit status 3: Error: no nftables for you");
    EXPECT_EQ(describe(source(*ruleset, "iptables-nft-save")),
              "iptables-nft-save: failed: iptables-save line 2: not iptables-save's format: "
              "garbage");
    EXPECT_EQ(describe(source(*ruleset, "ip6tables-nft-save")),
              "ip6tables-nft-save: failed: timed out after 1000 ms");
}

TEST_F(NatRulesetTest, AToolInheritsNoDescriptorOfTheCaller) {
    Netns node;
    int leaked = open("/proc/self/status", O_RDONLY);  // without O_CLOEXEC
    ASSERT_GE(leaked, 3);
    std::string fd = "/proc/$$/fd/" + std::to_string(leaked);
    // The fake tool says whether it has that descriptor, and fails so that it shows.
    FakeTools tools(std::vector<std::pair<std::string, std::string>>{
        {"nft", "if [ -e " + fd + " ]; then echo inherited >&2; else echo clean >&2; fi; exit 1"}});
    Result<NatRuleset> ruleset = read_nat_ruleset(node.fd());
    close(leaked);
    ASSERT_TRUE(ruleset.ok()) << ruleset.error();
    EXPECT_EQ(describe(source(*ruleset, "nft")), "nft: failed: exit status 1: clean");
}

TEST_F(NatRulesetTest, AToolKilledOrFailingSilentlyOrWarningSaysSo) {
    Netns node;
    FakeTools tools(
        {{"nft", "kill -KILL $$"},
         {"iptables-nft-save", "exit 1"},
         {"ip6tables-nft-save", "echo '# Warning: something' >&2; printf '*nat\\nCOMMIT\\n'"}});
    Result<NatRuleset> ruleset = read_nat_ruleset(node.fd());
    ASSERT_TRUE(ruleset.ok()) << ruleset.error();
    EXPECT_EQ(describe(source(*ruleset, "nft")),
              "nft: failed: killed by signal 9: nothing on stderr");
    EXPECT_EQ(describe(source(*ruleset, "iptables-nft-save")),
              "iptables-nft-save: failed: exit status 1: nothing on stderr");
    const NatSource &warned = source(*ruleset, "ip6tables-nft-save");
    EXPECT_EQ(warned.state, NatSourceState::read);
    EXPECT_EQ(describe(warned), "ip6tables-nft-save: read (" + warned.path +
                                    "), 0 NAT rules; it said: # Warning: something");
}

// What read_nat_ruleset() says of each source when run by a process without privileges
// (a forked child that became nobody), one describe() line per source.
std::string read_as_nobody(const Netns &netns) {
    int lines[2];
    EXPECT_EQ(pipe(lines), 0);
    pid_t child = fork();
    if (child == 0) {
        close(lines[0]);
        if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
        Result<NatRuleset> ruleset = read_nat_ruleset(netns.fd());
        std::string text = ruleset ? "" : ruleset.error() + "\n";
        if (ruleset)
            for (const NatSource &source : ruleset->sources) text += describe(source) + "\n";
        ssize_t written = write(lines[1], text.data(), text.size());
        _exit(written == ssize_t(text.size()) ? 0 : 3);
    }
    close(lines[1]);
    std::string text;
    char chunk[4096];
    for (ssize_t got; (got = read(lines[0], chunk, sizeof chunk)) > 0;)
        text.append(chunk, std::size_t(got));
    close(lines[0]);
    int status = 0;
    EXPECT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    return text;
}

TEST_F(NatRulesetTest, WithoutPrivilegesEachSourceSaysWhy) {
    Netns node;
    std::string said = read_as_nobody(node);
    EXPECT_NE(said.find("nft: failed: cannot join the network namespace (setns): Operation not "
                        "permitted\n"),
              std::string::npos)
        << said;
    EXPECT_NE(said.find("iptables-legacy-save: failed: setns: Operation not permitted\n"),
              std::string::npos)
        << said;
    EXPECT_NE(said.find("ip6tables-nft-save: failed: cannot join the network namespace"),
              std::string::npos)
        << said;
}

TEST_F(NatRulesetTest, OnlyANetworkNamespaceIsRead) {
    int uts = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(uts, 0);
    Result<NatRuleset> ruleset = read_nat_ruleset(uts);
    close(uts);
    ASSERT_FALSE(ruleset.ok());
    EXPECT_NE(ruleset.error().find("not a network namespace"), std::string::npos)
        << ruleset.error();
    int file = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    ruleset = read_nat_ruleset(file);
    close(file);
    ASSERT_FALSE(ruleset.ok());
    ruleset = read_nat_ruleset(-1);
    ASSERT_FALSE(ruleset.ok());
    EXPECT_NE(ruleset.error().find("Bad file descriptor"), std::string::npos) << ruleset.error();
}

}  // namespace
}  // namespace portwatch::test
