// SPDX-License-Identifier: Apache-2.0
// Causes: the facts causes.h reasons from, for each scope at warning or above (a level change,
// a report, a refresh of metrics or top): one pass over the scopes and one over the sockets,
// whatever the number of scopes.
#include "model/port_model.h"

#include <algorithm>

namespace portwatch {
namespace {

// pid -> ports, as CauseProcess, most ports first (ties: lowest pid), at most `top`.
std::vector<CauseProcess> ranked_processes(
    const std::map<std::uint32_t, std::set<std::uint16_t>> &ports_by_pid,
    const std::map<std::uint32_t, ProcessUsage> &processes, std::size_t top) {
    std::vector<CauseProcess> out;
    for (const auto &[pid, ports] : ports_by_pid) {
        auto known = processes.find(pid);
        out.push_back({pid, known != processes.end() ? known->second.comm : "", ports.size()});
    }
    std::sort(out.begin(), out.end(), [](const CauseProcess &a, const CauseProcess &b) {
        return a.ports != b.ports ? a.ports > b.ports : a.pid < b.pid;
    });
    if (out.size() > top) out.resize(top);
    return out;
}

constexpr std::size_t kExamplePorts = 5;

struct PortsByPid {
    std::set<std::uint16_t> ports;
    std::map<std::uint32_t, std::set<std::uint16_t>> by_pid;

    void add(std::uint32_t pid, std::uint16_t port) {
        ports.insert(port);
        by_pid[pid].insert(port);
    }
};

struct ReleaseTotals {
    std::uint64_t time_wait = 0, closed = 0, all = 0;

    // A scope's releases of the last `window_s` seconds before `now_s` (its record is pruned
    // only when it changes).
    template <typename Seconds>
    void add(const Seconds &releases, std::uint64_t now_s, std::uint64_t window_s) {
        for (const auto &second : releases) {
            if (second.second + window_s < now_s) continue;
            time_wait += second.time_wait;
            closed += second.closed;
            all += second.time_wait + second.closed + second.other;
        }
    }
};

// What every scope of one netns shares: its bind()-held ports of the range, its
// destinations' connections, its releases.
struct NetnsTally {
    PortsByPid bind_zero;  // TCP sockets bound to port 0, not listening
    std::set<std::uint16_t> connected;
    PortsByPid tcp_bound, udp_bound;  // listeners and explicit binds
    std::set<std::uint16_t> listeners;
    std::size_t connect_ports = 0, destinations = 0;
    ReleaseTotals tcp_releases, udp_releases;
};

// The ports a holder has held in a scope, and for how long.
struct HolderAges {
    std::uint32_t pid = 0;
    std::vector<double> ages_s;
};

// What the scopes at warning or above need tallied: their netns's, and their top holder's.
struct Tallies {
    std::map<std::uint32_t, NetnsTally> netns;
    std::map<ScopeKey, HolderAges> holders;
};

Tallies tallies_for(const std::vector<std::pair<ScopeUsage *, const ScopeState *>> &usages) {
    Tallies tallies;
    for (const auto &[usage, state] : usages) {
        if (usage->level < WarningLevel::warning || usage->key.kind == ScopeKind::nat) continue;
        tallies.netns[usage->key.netns];
        if (!usage->top_processes.empty())
            tallies.holders[usage->key].pid = usage->top_processes.front().pid;
    }
    return tallies;
}

void tally_scopes(const std::map<ScopeKey, ScopeState> &scopes, std::uint64_t now_s,
                  std::uint64_t window_s, Tallies &tallies) {
    for (const auto &[key, state] : scopes) {
        auto tally = tallies.netns.find(key.netns);
        if (tally == tallies.netns.end()) continue;
        (state.proto == Proto::udp ? tally->second.udp_releases : tally->second.tcp_releases)
            .add(state.releases, now_s, window_s);
        if (key.kind == ScopeKind::destination && state.held) {
            tally->second.connect_ports += state.held;
            tally->second.destinations++;
        }
    }
}

// How long `held` has held its port, if its holder is the top holder of `scope`.
void note_age(Tallies &tallies, const ScopeKey &scope, const HeldSocket &held,
              std::uint64_t now_ns) {
    auto holder = tallies.holders.find(scope);
    if (holder != tallies.holders.end() && holder->second.pid == held.pid)
        holder->second.ages_s.push_back(
            double(now_ns > held.since_ns ? now_ns - held.since_ns : 0) / 1e9);
}

// One socket of a tallied netns; `in_range`: its port is one of the range.
void tally_socket(Tallies &tallies, const HeldSocket &held, bool in_range, std::uint64_t now_ns) {
    NetnsTally &tally = tallies.netns.at(held.sock.netns);
    bool udp = held.sock.proto == Proto::udp;
    ScopeKey range_scope;
    range_scope.kind = udp ? ScopeKind::udp : ScopeKind::bind;
    range_scope.netns = held.sock.netns;
    if (held.scope_kind() == ScopeKind::destination) note_age(tallies, held.scope(), held, now_ns);
    if (in_range) note_age(tallies, range_scope, held, now_ns);
    if (held.scope_kind() == ScopeKind::destination || !in_range) return;
    std::uint16_t port = held.sock.local_port;
    if (!udp && held.how == How::bind_ephemeral && !held.listening) {
        tally.bind_zero.add(held.pid, port);
        if (held.connected) tally.connected.insert(port);
    } else if (!udp || held.how == How::bind) {
        (udp ? tally.udp_bound : tally.tcp_bound).add(held.pid, port);
        if (!udp && (held.listening || held.how == How::listen_autobind))
            tally.listeners.insert(port);
    }
}

// A port both kinds hold (SO_REUSEPORT) is the fixed bind's.
void give_fixed_binds_their_ports(Tallies &tallies) {
    for (auto &[netns, tally] : tallies.netns)
        for (std::uint16_t port : tally.tcp_bound.ports) {
            tally.bind_zero.ports.erase(port);
            tally.connected.erase(port);
        }
}

void add_release_facts(CauseFacts &facts, const ScopeKey &key, const ScopeState &state,
                       const NetnsTally &tally, std::uint64_t now_s, std::uint64_t window_s) {
    ReleaseTotals releases = key.kind == ScopeKind::udp ? tally.udp_releases : tally.tcp_releases;
    if (key.kind == ScopeKind::destination) {  // its own
        releases = {};
        releases.add(state.releases, now_s, window_s);
        facts.connections = state.held;
        facts.netns_connect_ports = tally.connect_ports;
        facts.destinations = tally.destinations;
    }
    facts.closed_here_first = releases.time_wait;
    facts.closed_otherwise = releases.closed;
    facts.releases_last_minute = releases.all;
}

void add_bound_facts(CauseFacts &facts, ScopeKind kind, const NetnsTally &tally,
                     const std::map<std::uint32_t, ProcessUsage> &processes, std::size_t top) {
    if (kind != ScopeKind::udp) {
        facts.bind_zero_ports = tally.bind_zero.ports.size();
        facts.bind_zero_connected = tally.connected.size();
        facts.bind_zero_processes = ranked_processes(tally.bind_zero.by_pid, processes, top);
    }
    const PortsByPid &bound = kind == ScopeKind::udp ? tally.udp_bound : tally.tcp_bound;
    facts.bound_ports = bound.ports.size();
    facts.bound_listeners = kind == ScopeKind::udp ? 0 : tally.listeners.size();
    facts.bound_processes = ranked_processes(bound.by_pid, processes, top);
    for (std::uint16_t port : bound.ports) {
        if (facts.bound_examples.size() == kExamplePorts) break;
        facts.bound_examples.push_back(port);
    }
}

void add_holder_facts(CauseFacts &facts, const TopProcess &top, std::vector<double> ages) {
    facts.holder = CauseProcess{top.pid, top.comm, top.ports};
    if (ages.empty()) return;
    std::sort(ages.begin(), ages.end());
    facts.holder_oldest_s = ages.back();
    facts.holder_median_s = ages[ages.size() / 2];
}

}  // namespace

// The facts a usage itself gives, with its netns's settings.
CauseFacts PortModel::scope_facts(const ScopeUsage &usage) const {
    const ScopeKey &key = usage.key;
    CauseFacts facts;
    facts.kind = key.kind;
    facts.loopback_destination = key.kind == ScopeKind::destination && is_loopback(key.remote_addr);
    if (auto ns = netns_.find(key.netns); ns != netns_.end()) facts.config = ns->second.config;
    facts.warn_ratio = settings_.warn_ratio;
    facts.in_use = usage.in_use;
    facts.capacity = usage.capacity;
    facts.time_wait = usage.time_wait;
    bool counted = key.kind == ScopeKind::bind ||
                   (key.kind == ScopeKind::destination && time_wait_counts(key));
    facts.time_wait_counted = counted ? usage.time_wait : 0;
    facts.allocation_rate = usage.allocation_rate;
    facts.eta_seconds = usage.eta_seconds;
    return facts;
}

void PortModel::attach_causes(
    const std::vector<std::pair<ScopeUsage *, const ScopeState *>> &usages,
    std::uint64_t now_ns) const {
    for (const auto &[usage, state] : usages)
        if (usage->level >= WarningLevel::warning && usage->key.kind == ScopeKind::nat)
            usage->causes = analyse_nat_causes(nat_facts(*usage, now_ns));
    Tallies tallies = tallies_for(usages);
    if (tallies.netns.empty()) return;
    std::uint64_t now_s = now_ns / kSecondNs;
    std::uint64_t window_s = settings_.rate_window_ns / kSecondNs;
    tally_scopes(scopes_, now_s, window_s, tallies);
    for (const auto &[cookie, held] : sockets_) {
        if (!tallies.netns.contains(held.sock.netns)) continue;
        auto ns = netns_.find(held.sock.netns);
        bool in_range = ns != netns_.end() && ns->second.config.is_ephemeral(held.sock.local_port);
        tally_socket(tallies, held, in_range, now_ns);
    }
    give_fixed_binds_their_ports(tallies);

    for (const auto &[usage, state] : usages) {
        if (usage->level < WarningLevel::warning || usage->key.kind == ScopeKind::nat) continue;
        const NetnsTally &tally = tallies.netns.at(usage->key.netns);
        CauseFacts facts = scope_facts(*usage);
        add_release_facts(facts, usage->key, *state, tally, now_s, window_s);
        add_bound_facts(facts, usage->key.kind, tally, processes_.all(), settings_.top_n);
        if (!usage->top_processes.empty())
            add_holder_facts(facts, usage->top_processes.front(),
                             tallies.holders.at(usage->key).ages_s);
        usage->causes = analyse_causes(facts);
    }
}

}  // namespace portwatch
