// SPDX-License-Identifier: Apache-2.0
// The NAT of every network namespace, in the model: each namespace's conntrack events are
// watched, its table is read on every pass (what the events missed), and its statistics are
// read each second for the packets its NAT dropped for want of a free port. A scope's
// capacity is the range of the rule that made its first mapping, from the namespace's ruleset
// (nft, iptables), read when its first mapping comes and again when that reading is older
// than kRulesetMaxAgeNs.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "agent/stats.h"
#include "model/port_model.h"
#include "system/conntrack_table.h"
#include "system/nat_ruleset.h"
#include "system/netns_config.h"

namespace portwatch {

class NatWatch {
  public:
    // `only_netns`: --netns, the one namespace watched.
    NatWatch(PortModel &model, NetnsConfigReader &netns_reader,
             std::optional<std::uint32_t> only_netns);
    // The model may outlive it (snapshot): its range source, this watch's rules, goes first.
    ~NatWatch() { model_.set_nat_range_source({}); }
    NatWatch(const NatWatch &) = delete;
    NatWatch &operator=(const NatWatch &) = delete;

    // Watches the namespaces that came, forgets those that went, and reads every watched
    // table into the model. The model keeps the warnings it finds (take_warnings()).
    void pass(std::uint64_t now_boot_ns);
    // The events that came since the last call, into the model, and the drops counted once a
    // second; returns the warnings whose level changed.
    std::vector<Warning> poll(std::uint64_t now_boot_ns);

    NatTotals totals() const;

    static constexpr std::uint64_t kRulesetMaxAgeNs = 300'000'000'000;
    static constexpr std::uint64_t kRereadAfterNs = 2'500'000'000;  // > reconcile_grace_ns

  private:
    struct Watched {
        ConntrackEvents events;
        std::optional<ConntrackStats> stats;  // the last reading
        bool translates = false;              // a mapping was seen: its drops are NAT's
        // After an overflow the table is read at once and again past the model's grace, which
        // spares the mappings younger than it that the first reading did not list.
        std::uint64_t reread_at_ns = 0;
    };

    void watch(std::uint32_t netns, std::uint64_t now_boot_ns);
    void read_table(std::uint32_t netns, std::uint64_t now_boot_ns);
    std::vector<Warning> count_drops(std::uint32_t netns, Watched &watched,
                                     std::uint64_t now_boot_ns);
    std::vector<std::uint32_t> namespaces() const;
    // The totals' error: why the last netns that failed cannot be watched.
    void say_failed(std::uint32_t netns, const std::string &why);
    NatPortRange range_of(const NatMapping &mapping);
    const std::vector<NatRule> &rules_of(std::uint32_t netns);

    struct Ruleset {
        std::vector<NatRule> rules;
        std::uint64_t read_ns = 0;
    };

    PortModel &model_;
    NetnsConfigReader &netns_reader_;
    std::optional<std::uint32_t> only_netns_;
    std::map<std::uint32_t, Watched> watched_;
    std::map<std::uint32_t, Ruleset> rulesets_;
    std::uint64_t now_ns_ = 0;  // of the pass or poll at work
    std::uint64_t next_stats_ns_ = 0;
    NatTotals totals_;
};

}  // namespace portwatch
