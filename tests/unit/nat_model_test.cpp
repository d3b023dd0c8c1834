// SPDX-License-Identifier: Apache-2.0
// NAT scopes in the model: mappings from conntrack, the client processes behind them, their
// levels, drops and causes; synthetic mappings, as conntrack would announce them.
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>

#include "model/port_model.h"
#include "output/json_format.h"
#include "sample_events.h"

namespace portwatch {
namespace {

using testing::ipv4;
using testing::task;

constexpr std::uint32_t kPodNetns = 4026532001u;
constexpr std::uint32_t kNodeNetns = 4026532002u;
constexpr std::uint64_t kSecond = 1'000'000'000;

// A pod (198.18.1.N) connecting to 198.19.0.2:80 through a node that masquerades to
// 198.19.0.1 with the ports of a 10-port rule.
struct Nat {
    PortModel model{ModelSettings{}, PortModel::fixed_range({32768, 60999})};
    std::uint64_t now = 100 * kSecond;
    std::uint64_t next_cookie = 1;
    std::uint32_t next_id = 1;

    explicit Nat(PortRange rule = {40000, 40009}) {
        model.set_nat_range_source([rule](const NatMapping &) {
            return NatPortRange{rule, true, "nft table ip t chain post handle 2"};
        });
    }

    // The pod's connect(), as the kernel side reports it.
    AllocateEvent pod_connect(std::uint16_t port, std::uint32_t pid, std::uint8_t pod = 1) {
        AllocateEvent e;
        e.boot_ns = now;
        e.sock.cookie = next_cookie++;
        e.sock.netns = kPodNetns + pod - 1;
        e.sock.local_addr = ipv4(198, 18, pod, 2);
        e.sock.local_port = port;
        e.sock.remote_addr = ipv4(198, 19, 0, 2);
        e.sock.remote_port = 80;
        e.task = task("client");
        e.task.pid = e.task.tid = pid;
        e.how = How::connect_autobind;
        e.syscall = Syscall::connect;
        return e;
    }

    NatMapping mapping(std::uint16_t pod_port, std::uint16_t nat_port, std::uint8_t pod = 1) {
        NatMapping m;
        m.netns = kNodeNetns;
        m.id = next_id++;
        m.original = {ipv4(198, 18, pod, 2), pod_port, ipv4(198, 19, 0, 2), 80};
        m.reply = {ipv4(198, 19, 0, 2), 80, ipv4(198, 19, 0, 1), nat_port};
        return m;
    }

    std::vector<Warning> add(const NatMapping &m) {
        now += kSecond / 10;
        return model.apply(NatEvent{now, NatChange::added, m});
    }
    std::vector<Warning> remove(const NatMapping &m) {
        now += kSecond / 10;
        return model.apply(NatEvent{now, NatChange::removed, m});
    }

    // Connections from `pid` in pod 1, each mapped: ports 50000.., NAT ports 40000..
    std::vector<Warning> connect_through(std::size_t count, std::uint32_t pid) {
        std::vector<Warning> warnings;
        for (std::size_t i = 0; i < count; i++) {
            std::uint16_t port = std::uint16_t(50000 + held.size());
            model.apply(pod_connect(port, pid));
            held.push_back(mapping(port, std::uint16_t(40000 + held.size())));
            for (Warning &w : add(held.back())) warnings.push_back(std::move(w));
        }
        return warnings;
    }

    static std::optional<ScopeUsage> nat_scope(const Report &report) {
        for (const NetnsReport &ns : report.netns)
            for (const ScopeUsage &usage : ns.scopes)
                if (usage.key.kind == ScopeKind::nat) return usage;
        return std::nullopt;
    }

    std::vector<NatMapping> held;
};

TEST(NatModel, AScopeIsTheTranslatedAddressTowardsTheServerWithTheRulesRange) {
    Nat nat;
    nat.connect_through(3, 700);
    std::optional<ScopeUsage> scope = nat.nat_scope(nat.model.report(nat.now));
    ASSERT_TRUE(scope);
    EXPECT_EQ(scope->key.netns, kNodeNetns);
    EXPECT_EQ(scope->key.local_addr, ipv4(198, 19, 0, 1));
    EXPECT_EQ(scope->key.remote_addr, ipv4(198, 19, 0, 2));
    EXPECT_EQ(scope->key.remote_port, 80);
    EXPECT_EQ(scope->proto, Proto::tcp);
    EXPECT_EQ(scope->in_use, 3u);
    EXPECT_EQ(scope->capacity, 10u);
    ASSERT_EQ(scope->top_processes.size(), 1u);
    EXPECT_EQ(scope->top_processes[0].pid, 700u);
    EXPECT_EQ(scope->top_processes[0].ports, 3u);
}

TEST(NatModel, WarnsAtEightOfTenAndGoesCriticalWhenFull) {
    Nat nat;
    std::vector<Warning> first = nat.connect_through(7, 700);
    EXPECT_TRUE(first.empty());
    std::vector<Warning> eighth = nat.connect_through(1, 700);
    ASSERT_EQ(eighth.size(), 1u);
    EXPECT_EQ(eighth[0].level, WarningLevel::warning);
    EXPECT_EQ(eighth[0].usage.key.kind, ScopeKind::nat);
    EXPECT_EQ(eighth[0].usage.in_use, 8u);
    ASSERT_FALSE(eighth[0].usage.top_processes.empty());
    EXPECT_EQ(eighth[0].usage.top_processes[0].pid, 700u);
    nat.connect_through(1, 700);
    std::vector<Warning> tenth = nat.connect_through(1, 700);
    ASSERT_EQ(tenth.size(), 1u);
    EXPECT_EQ(tenth[0].level, WarningLevel::critical);
    // ranked causes: the rule's 10 ports explain nearly the whole range; one client only
    ASSERT_FALSE(tenth[0].usage.causes.empty());
    EXPECT_EQ(tenth[0].usage.causes[0].kind, CauseKind::nat_port_range);
    EXPECT_NE(tenth[0].usage.causes[0].advice.find("nft table ip t chain post handle 2"),
              std::string::npos);
    EXPECT_TRUE(
        std::none_of(tenth[0].usage.causes.begin(), tenth[0].usage.causes.end(),
                     [](const Cause &c) { return c.kind == CauseKind::nat_shared_address; }));
}

TEST(NatModel, DestroyedMappingsGiveTheirPortsBack) {
    Nat nat;
    nat.connect_through(10, 700);
    for (int i = 0; i < 6; i++) nat.remove(nat.held[i]);
    std::vector<Warning> last = nat.remove(nat.held[6]);
    std::optional<ScopeUsage> scope = nat.nat_scope(nat.model.report(nat.now));
    ASSERT_TRUE(scope);
    EXPECT_EQ(scope->in_use, 3u);
    EXPECT_EQ(scope->level, WarningLevel::ok);
    EXPECT_EQ(nat.model.nat_mappings(), 3u);
    // removing one it does not hold changes nothing
    EXPECT_TRUE(nat.remove(nat.held[0]).empty());
    EXPECT_EQ(nat.model.nat_mappings(), 3u);
}

TEST(NatModel, AMappingAnnouncedTwiceIsHeldOnce) {
    Nat nat;
    nat.connect_through(1, 700);
    nat.add(nat.held[0]);
    nat.model.reconcile_nat(kNodeNetns, {nat.held[0]}, nat.now);
    EXPECT_EQ(nat.model.nat_mappings(), 1u);
}

// conntrack's ids are 32-bit hashes: two live entries may share one (nf_ct_get_id()).
TEST(NatModel, TwoMappingsWithOneConntrackIdAreTwo) {
    Nat nat;
    NatMapping first = nat.mapping(50000, 40000);
    NatMapping second = nat.mapping(50001, 40001);
    second.id = first.id;
    nat.add(first);
    nat.add(second);
    EXPECT_EQ(nat.model.nat_mappings(), 2u);
    nat.remove(second);
    EXPECT_EQ(nat.model.nat_mappings(), 1u);
    nat.model.reconcile_nat(kNodeNetns, {first}, nat.now + 3 * kSecond);
    EXPECT_EQ(nat.model.nat_mappings(), 1u);
}

TEST(NatModel, ReconcileAddsWhatTheEventsMissedAndDropsWhatIsGoneAfterTheGrace) {
    Nat nat;
    nat.connect_through(2, 700);
    NatMapping unseen = nat.mapping(51000, 40005);
    // held[1] is gone from the table; held[0] stays
    nat.model.reconcile_nat(kNodeNetns, {nat.held[0], unseen}, nat.now);
    EXPECT_EQ(nat.model.nat_mappings(), 3u) << "held[1] is younger than the grace: kept";
    nat.now += 3 * kSecond;
    nat.model.reconcile_nat(kNodeNetns, {nat.held[0], unseen}, nat.now);
    EXPECT_EQ(nat.model.nat_mappings(), 2u);
    // another netns's table leaves this one's mappings alone
    nat.model.reconcile_nat(kNodeNetns + 7, {}, nat.now);
    EXPECT_EQ(nat.model.nat_mappings(), 2u);
}

TEST(NatModel, DropsMakeTheFullestScopeCriticalOnceAndHoldIt) {
    Nat nat;
    nat.connect_through(8, 700);
    std::vector<Warning> dropped = nat.model.count_nat_drops(kNodeNetns, 3, nat.now);
    ASSERT_EQ(dropped.size(), 1u);
    EXPECT_EQ(dropped[0].level, WarningLevel::critical);
    EXPECT_EQ(dropped[0].nat_drops, 3u);
    EXPECT_EQ(dropped[0].usage.key.remote_port, 80);
    EXPECT_TRUE(nat.model.count_nat_drops(kNodeNetns, 1, nat.now).empty()) << "said once";
    // 7 of 10 would be only a warning, but the drops prove it full: critical until they stop
    nat.remove(nat.held[0]);
    EXPECT_TRUE(nat.remove(nat.held[1]).empty());
    nat.now += 11 * kSecond;
    std::vector<Warning> calm = nat.remove(nat.held[2]);
    ASSERT_EQ(calm.size(), 1u);
    EXPECT_EQ(calm[0].level, WarningLevel::ok) << "5 of 10, the drops 11 s old";
    Report report = nat.model.report(nat.now);
    auto node = std::find_if(report.netns.begin(), report.netns.end(),
                             [](const NetnsReport &ns) { return ns.netns == kNodeNetns; });
    ASSERT_NE(node, report.netns.end());
    EXPECT_EQ(node->nat_drops, 4u);
}

// A clash no full scope explains (parallel DNS queries of one socket; 5.10 at a pod's first
// connection): said once a minute, naming no destination, changing no level.
TEST(NatModel, DropsNoFullScopeExplainsAreSaidOnceAMinuteWithoutADestination) {
    Nat nat;
    nat.connect_through(2, 700);
    std::vector<Warning> dropped = nat.model.count_nat_drops(kNodeNetns, 2, nat.now);
    ASSERT_EQ(dropped.size(), 1u);
    EXPECT_EQ(dropped[0].level, WarningLevel::warning);
    EXPECT_EQ(dropped[0].usage.key.kind, ScopeKind::nat);
    EXPECT_EQ(dropped[0].usage.key.netns, kNodeNetns);
    EXPECT_EQ(dropped[0].usage.key.remote_port, 0);
    EXPECT_EQ(dropped[0].nat_drops, 2u);
    EXPECT_TRUE(nat.model.count_nat_drops(kNodeNetns, 1, nat.now + kSecond).empty());
    EXPECT_EQ(nat.model.count_nat_drops(kNodeNetns, 1, nat.now + 61 * kSecond).size(), 1u);
    EXPECT_TRUE(nat.model.count_nat_drops(kNodeNetns, 0, nat.now + 200 * kSecond).empty());
    std::optional<ScopeUsage> scope = nat.nat_scope(nat.model.report(nat.now + 61 * kSecond));
    ASSERT_TRUE(scope);
    EXPECT_EQ(scope->level, WarningLevel::ok);
}

TEST(NatModel, ClientsOfManyPodsBehindOneAddressAreACause) {
    Nat nat;
    for (std::uint8_t pod = 1; pod <= 4; pod++)
        for (int i = 0; i < 2; i++) {
            std::uint16_t port = std::uint16_t(50000 + i);
            nat.model.apply(nat.pod_connect(port, 700u + pod, pod));
            nat.add(nat.mapping(port, std::uint16_t(40000 + 2 * pod + i), pod));
        }
    std::optional<ScopeUsage> scope = nat.nat_scope(nat.model.report(nat.now));
    ASSERT_TRUE(scope);
    EXPECT_EQ(scope->in_use, 8u);
    EXPECT_EQ(scope->level, WarningLevel::warning);
    EXPECT_EQ(scope->top_processes.size(), 4u);
    auto shared = std::find_if(scope->causes.begin(), scope->causes.end(), [](const Cause &c) {
        return c.kind == CauseKind::nat_shared_address;
    });
    ASSERT_NE(shared, scope->causes.end());
    EXPECT_EQ(shared->figures[0].value, 4) << "clients";
    EXPECT_EQ(shared->figures[1].value, 1) << "nat_addresses";
}

TEST(NatModel, WithoutARuleRangeTheKernelsDefaultIsTheCapacity) {
    PortModel model{ModelSettings{}, PortModel::fixed_range({32768, 60999})};
    Nat nat;
    NatMapping high = nat.mapping(50000, 50000);
    NatMapping low = nat.mapping(800, 900);
    low.reply.source_port = 81;  // another destination
    model.apply(NatEvent{nat.now, NatChange::added, high});
    model.apply(NatEvent{nat.now, NatChange::added, low});
    Report report = model.report(nat.now);
    std::vector<std::size_t> capacities;
    for (const NetnsReport &ns : report.netns)
        for (const ScopeUsage &usage : ns.scopes) capacities.push_back(usage.capacity);
    std::sort(capacities.begin(), capacities.end());
    EXPECT_EQ(capacities, (std::vector<std::size_t>{424, 64512})) << "600-1023, 1024-65535";
}

TEST(NatModel, UnderProcessFiltersOnlyMappingsOfHeldClientsCount) {
    ModelSettings settings;
    settings.nat_clients_only = true;
    Nat nat;
    nat.model = PortModel(settings, PortModel::fixed_range({32768, 60999}));
    nat.connect_through(2, 700);
    nat.add(nat.mapping(52000, 40008));  // nobody the filters chose
    EXPECT_EQ(nat.model.nat_mappings(), 2u);
}

TEST(NatModel, TheJsonWarningNamesTheScopeAndItsDrops) {
    Nat nat;
    nat.connect_through(9, 700);
    std::vector<Warning> dropped = nat.model.count_nat_drops(kNodeNetns, 5, nat.now);
    ASSERT_EQ(dropped.size(), 1u);
    auto json = to_json(dropped[0], testing::time_base());
    EXPECT_EQ(json["scope"], "nat");
    EXPECT_EQ(json["reason"], "nat_drops");
    EXPECT_EQ(json["nat_drops"], 5);
    EXPECT_EQ(json["local_addr"], "198.19.0.1");
    EXPECT_EQ(json["remote_addr"], "198.19.0.2");
    EXPECT_EQ(json["remote_port"], 80);
    EXPECT_EQ(json["top_processes"][0]["pid"], 700);
}

}  // namespace
}  // namespace portwatch
