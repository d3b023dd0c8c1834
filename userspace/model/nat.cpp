// SPDX-License-Identifier: Apache-2.0
// NAT scopes: the source ports a netns's NAT hands out towards one destination from one
// translated address, each held as long as its conntrack entry lives; and the client
// processes behind them, found by the mapping's original source.
#include <algorithm>
#include <array>
#include <set>
#include <utility>

#include "model/port_model.h"

namespace portwatch {
namespace {

// The reply tuple names the scope: its destination is the translated address, its source the
// server after any DNAT.
ScopeKey nat_scope_of(const NatKey &mapping) {
    ScopeKey key;
    key.kind = ScopeKind::nat;
    key.netns = mapping.netns;
    key.proto = mapping.proto;
    key.local_addr = unmapped(mapping.reply.destination);
    key.remote_addr = unmapped(mapping.reply.source);
    key.remote_port = mapping.reply.source_port;
    return key;
}

}  // namespace

NatClients::Source NatClients::source_of(const HeldSocket &held) {
    return {held.sock.proto, unmapped(held.sock.local_addr), held.sock.local_port};
}

void NatClients::add(const HeldSocket &held) {
    if (active_) by_source_[source_of(held)] = held.sock.cookie;
}

void NatClients::remove(const HeldSocket &held) {
    if (!active_) return;
    auto found = by_source_.find(source_of(held));
    if (found != by_source_.end() && found->second == held.sock.cookie) by_source_.erase(found);
}

std::optional<std::uint64_t> NatClients::find(Proto proto, const IpAddress &source,
                                              std::uint16_t port) const {
    auto found = by_source_.find(Source{proto, unmapped(source), port});
    if (found == by_source_.end()) {
        IpAddress wildcard;
        wildcard.family = source.family;
        found = by_source_.find(Source{proto, wildcard, port});
    }
    if (found == by_source_.end()) return std::nullopt;
    return found->second;
}

std::vector<Warning> PortModel::apply(const NatEvent &event) {
    std::vector<Warning> warnings;
    expire_time_wait(event.boot_ns, warnings);
    std::optional<Warning> changed = event.change == NatChange::added
                                         ? add_nat(event.mapping, event.boot_ns)
                                         : remove_nat(NatKey(event.mapping), event.boot_ns);
    if (changed) warnings.push_back(*changed);
    return warnings;
}

void PortModel::reconcile_nat(std::uint32_t netns, const std::vector<NatMapping> &table,
                              std::uint64_t read_at_ns) {
    absl::flat_hash_set<NatKey> listed;
    for (const NatMapping &mapping : table) {
        listed.insert(NatKey(mapping));
        if (auto warning = add_nat(mapping, read_at_ns)) pending_warnings_.push_back(*warning);
    }
    // a mapping newer than the grace may have been added after the dump passed its place
    std::uint64_t settled_before = read_at_ns - std::min(read_at_ns, settings_.reconcile_grace_ns);
    std::vector<NatKey> gone;
    for (const auto &[key, held] : nat_mappings_)
        if (key.netns == netns && !listed.contains(key) && held.since_ns < settled_before)
            gone.push_back(key);
    for (const NatKey &key : gone)
        if (auto warning = remove_nat(key, read_at_ns)) pending_warnings_.push_back(*warning);
}

// conntrack's insert_failed counts every clash of a new entry with a live one: a NAT with no
// free port, but also two packets of one flow racing to confirm it (parallel DNS queries of one
// socket, nf_conntrack_core.c's nf_ct_resolve_clash()), seen too on 5.10 at a pod's first
// connection. Drops make a NAT scope critical only when one is near full; otherwise they are
// said, once a minute per netns, with no destination named.
std::vector<Warning> PortModel::count_nat_drops(std::uint32_t netns, std::uint64_t drops,
                                                std::uint64_t now_ns) {
    if (drops == 0) return {};
    NetnsState &ns = netns_state(netns, 0);
    ns.nat_drops += drops;
    const ScopeKey *fullest = fullest_scope(
        [netns](const ScopeKey &key) { return key.kind == ScopeKind::nat && key.netns == netns; });
    if (!fullest || utilization(*fullest, scopes_.at(*fullest)) < settings_.warn_ratio) {
        if (ns.nat_drops_said_ns && now_ns < ns.nat_drops_said_ns + settings_.rate_window_ns)
            return {};
        ns.nat_drops_said_ns = now_ns;
        Warning warning{now_ns, WarningLevel::warning, {}, std::nullopt, drops};
        warning.usage.key.kind = ScopeKind::nat;
        warning.usage.key.netns = netns;
        warning.usage.level = WarningLevel::warning;
        return {warning};
    }
    ScopeState &state = scopes_.at(*fullest);
    state.nat_drop_ns = now_ns;
    bool already = state.level == WarningLevel::critical && state.failure_reported;
    state.level = WarningLevel::critical;
    if (already) return {};
    state.failure_reported = true;
    return {Warning{now_ns, WarningLevel::critical, usage_with_causes(*fullest, state, now_ns),
                    std::nullopt, drops}};
}

std::optional<Warning> PortModel::add_nat(const NatMapping &mapping, std::uint64_t now_ns) {
    NatKey id(mapping);
    if (nat_mappings_.contains(id)) return std::nullopt;
    std::uint32_t pid = nat_client(mapping);
    if (pid == 0 && settings_.nat_clients_only) return std::nullopt;
    netns_state(mapping.netns, 0);
    ScopeKey key = nat_scope_of(id);
    ScopeState &state = scope_state(key, mapping.proto);
    if (state.nat_capacity == 0) {
        NatPortRange range =
            nat_range_source_
                ? nat_range_source_(mapping)
                : NatPortRange{default_nat_port_range(mapping.original.source_port), false, ""};
        state.nat_capacity = range.range.size();
        state.nat_rule = range.from_rule ? range.where : "";
    }
    nat_mappings_[id] = NatHeld{pid, now_ns, unmapped(mapping.original.source)};
    state.held++;
    if (pid) state.held_by_pid[pid]++;
    count_allocation(state, now_ns);
    record_sample(state, key, now_ns);
    return evaluate(key, state, now_ns);
}

std::optional<Warning> PortModel::remove_nat(const NatKey &key, std::uint64_t now_ns) {
    auto found = nat_mappings_.find(key);
    if (found == nat_mappings_.end()) return std::nullopt;
    NatHeld held = found->second;
    nat_mappings_.erase(found);
    ScopeKey scope = nat_scope_of(key);
    ScopeState &state = scopes_.at(scope);
    state.held--;
    if (held.pid)
        if (auto owner = state.held_by_pid.find(held.pid);
            owner != state.held_by_pid.end() && --owner->second == 0)
            state.held_by_pid.erase(owner);
    record_sample(state, scope, now_ns);
    return evaluate(scope, state, now_ns);
}

// The first mapping makes the model index its client sockets by source from then on.
std::uint32_t PortModel::nat_client(const NatMapping &mapping) {
    if (!nat_clients_.active()) {
        nat_clients_.activate();
        for (const auto &[cookie, held] : sockets_) nat_clients_.add(held);
    }
    auto cookie =
        nat_clients_.find(mapping.proto, mapping.original.source, mapping.original.source_port);
    if (!cookie) return 0;
    auto held = sockets_.find(*cookie);
    return held == sockets_.end() ? 0 : held->second.pid;
}

std::size_t PortModel::nat_capacity(const ScopeKey &key) const {
    auto found = scopes_.find(key);
    return found == scopes_.end() ? 0 : found->second.nat_capacity;
}

NatCauseFacts PortModel::nat_facts(const ScopeUsage &usage, std::uint64_t now_ns) const {
    NatCauseFacts facts;
    facts.in_use = usage.in_use;
    facts.capacity = usage.capacity;
    if (auto state = scopes_.find(usage.key); state != scopes_.end())
        facts.rule = state->second.nat_rule;
    std::uint32_t top_pid = usage.top_processes.empty() ? 0 : usage.top_processes.front().pid;
    std::set<std::pair<Family, std::array<std::uint8_t, 16>>> clients;
    std::uint64_t oldest_ns = now_ns;
    for (const auto &[key, held] : nat_mappings_) {
        if (key.netns != usage.key.netns || nat_scope_of(key) != usage.key) continue;
        clients.emplace(held.client.family, held.client.bytes);
        if (top_pid && held.pid == top_pid) oldest_ns = std::min(oldest_ns, held.since_ns);
    }
    facts.clients = clients.size();
    for (const auto &[key, state] : scopes_)
        facts.nat_addresses += key.kind == ScopeKind::nat && key.netns == usage.key.netns &&
                               key.proto == usage.key.proto &&
                               key.remote_addr == usage.key.remote_addr &&
                               key.remote_port == usage.key.remote_port && state.held;
    if (top_pid) {
        const TopProcess &top = usage.top_processes.front();
        facts.holder = CauseProcess{top.pid, top.comm, top.ports};
        facts.holder_oldest_s = double(now_ns - oldest_ns) / 1e9;
    }
    return facts;
}

}  // namespace portwatch
