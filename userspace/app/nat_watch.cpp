// SPDX-License-Identifier: Apache-2.0
#include "app/nat_watch.h"

#include <algorithm>
#include <utility>

namespace portwatch {
namespace {

constexpr std::uint64_t kStatsEveryNs = 1'000'000'000;

}  // namespace

NatWatch::NatWatch(PortModel &model, NetnsConfigReader &netns_reader,
                   std::optional<std::uint32_t> only_netns)
    : model_(model), netns_reader_(netns_reader), only_netns_(only_netns) {
    model_.set_nat_range_source([this](const NatMapping &mapping) { return range_of(mapping); });
}

NatPortRange NatWatch::range_of(const NatMapping &mapping) {
    return nat_port_range(rules_of(mapping.netns), mapping.proto, mapping.nat_address(),
                          mapping.original.source_port, mapping.nat_port());
}

// A tool that failed is said in the totals' error; one not installed is not an error.
const std::vector<NatRule> &NatWatch::rules_of(std::uint32_t netns) {
    Ruleset &ruleset = rulesets_[netns];
    if (ruleset.read_ns != 0 && now_ns_ < ruleset.read_ns + kRulesetMaxAgeNs) return ruleset.rules;
    ruleset.read_ns = now_ns_ ? now_ns_ : 1;
    Result<int> fd = netns_reader_.handle(netns);
    if (!fd) return ruleset.rules;
    Result<NatRuleset> read = read_nat_ruleset(*fd);
    if (!read) {
        say_failed(netns, read.error());
        return ruleset.rules;
    }
    for (const NatSource &source : read->sources)
        if (source.state == NatSourceState::failed) say_failed(netns, describe(source));
    ruleset.rules = std::move(read->rules);
    return ruleset.rules;
}

void NatWatch::say_failed(std::uint32_t netns, const std::string &why) {
    totals_.error = "netns " + std::to_string(netns) + ": " + why;
}

std::vector<std::uint32_t> NatWatch::namespaces() const {
    if (only_netns_) return {*only_netns_};
    return netns_reader_.all_namespaces();
}

void NatWatch::pass(std::uint64_t now_boot_ns) {
    now_ns_ = now_boot_ns;
    if (!conntrack_loaded()) return;  // nothing is translated; `check` says so
    std::vector<std::uint32_t> present = namespaces();
    // an events socket keeps its namespace alive: a namespace nothing else names is let go
    auto gone = [&](const auto &entry) {
        return !std::binary_search(present.begin(), present.end(), entry.first);
    };
    std::erase_if(watched_, gone);
    std::erase_if(rulesets_, gone);
    for (std::uint32_t netns : present) {
        if (!watched_.contains(netns)) watch(netns, now_boot_ns);
        if (watched_.contains(netns)) read_table(netns, now_boot_ns);
    }
    totals_.namespaces = watched_.size();
}

// Subscribed before the first read of the table: a mapping made in between is in both.
void NatWatch::watch(std::uint32_t netns, std::uint64_t now_boot_ns) {
    Result<int> fd = netns_reader_.handle(netns);
    if (!fd) return;  // gone since it was listed
    Result<ConntrackEvents> events = ConntrackEvents::open(*fd, netns);
    if (!events) {
        say_failed(netns, events.error());
        return;
    }
    Watched &watched =
        watched_.emplace(netns, Watched{std::move(*events), {}, false}).first->second;
    count_drops(netns, watched, now_boot_ns);  // the baseline: drops before the start are not ours
}

void NatWatch::read_table(std::uint32_t netns, std::uint64_t now_boot_ns) {
    Result<int> fd = netns_reader_.handle(netns);
    if (!fd) return;
    Result<std::vector<NatMapping>> table = dump_nat_mappings(*fd, netns);
    if (!table) {
        say_failed(netns, table.error());
        return;
    }
    if (!table->empty()) watched_.at(netns).translates = true;
    model_.reconcile_nat(netns, *table, now_boot_ns);
}

std::vector<Warning> NatWatch::poll(std::uint64_t now_boot_ns) {
    now_ns_ = now_boot_ns;
    std::vector<Warning> warnings;
    auto keep = [&warnings](std::vector<Warning> more) {
        warnings.insert(warnings.end(), more.begin(), more.end());
    };
    for (auto &[netns, watched] : watched_) {
        Result<ConntrackEvents::Pending> pending = watched.events.take_pending();
        if (!pending) {
            say_failed(netns, pending.error());
            continue;
        }
        totals_.malformed += pending->malformed;
        for (auto &[change, mapping] : pending->changes) {
            watched.translates = true;
            keep(model_.apply(NatEvent{now_boot_ns, change, mapping}));
        }
        if (pending->overflowed) {
            totals_.overflows++;
            watched.reread_at_ns = now_boot_ns + kRereadAfterNs;
            read_table(netns, now_boot_ns);
            keep(model_.take_warnings());
        } else if (watched.reread_at_ns && now_boot_ns >= watched.reread_at_ns) {
            watched.reread_at_ns = 0;
            read_table(netns, now_boot_ns);
            keep(model_.take_warnings());
        }
    }
    if (now_boot_ns >= next_stats_ns_) {
        next_stats_ns_ = now_boot_ns + kStatsEveryNs;
        for (auto &[netns, watched] : watched_)
            if (watched.translates) keep(count_drops(netns, watched, now_boot_ns));
    }
    return warnings;
}

// conntrack's insert_failed: a new entry whose tuple clashed with a live one, dropped at
// __nf_conntrack_confirm(); for a NAT, no free port was left. What a count means is the
// model's to say (PortModel::count_nat_drops()).
std::vector<Warning> NatWatch::count_drops(std::uint32_t netns, Watched &watched,
                                           std::uint64_t now_boot_ns) {
    Result<int> fd = netns_reader_.handle(netns);
    if (!fd) return {};
    Result<ConntrackStats> stats = read_conntrack_stats(*fd);
    if (!stats) {
        say_failed(netns, stats.error());
        return {};
    }
    std::uint64_t before = watched.stats ? watched.stats->insert_failed : stats->insert_failed;
    watched.stats = *stats;
    if (stats->insert_failed <= before) return {};
    std::uint64_t drops = stats->insert_failed - before;
    totals_.drops += drops;
    return model_.count_nat_drops(netns, drops, now_boot_ns);
}

NatTotals NatWatch::totals() const {
    NatTotals totals = totals_;
    totals.mappings = model_.nat_mappings();
    return totals;
}

}  // namespace portwatch
