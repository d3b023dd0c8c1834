// SPDX-License-Identifier: Apache-2.0
// Scope usage: how full each allocation scope is, how fast it fills, when it runs out, and the
// level that says so.
#include "model/port_model.h"

#include <algorithm>
#include <optional>

namespace portwatch {

namespace {

// A fill rate needs samples this far apart; a scope filling in its first second needs an ETA
// most of all.
constexpr double kMinFillSpanS = 0.1;

// Allocations per second over the rate window.
double allocation_rate(const ScopeState &state, std::uint64_t now_ns) {
    std::uint64_t allocations = 0;
    for (const auto &[second, count] : state.allocations) allocations += count;
    std::uint64_t now_s = now_ns / kSecondNs;
    if (state.allocations.empty() || now_s < state.allocations.front().first) return 0;
    double span_s = double(now_s - state.allocations.front().first + 1);
    return double(allocations) / span_s;
}

// When the scope is full at the rate it filled since its oldest sample; none when not filling.
std::optional<double> eta_seconds(const ScopeState &state, const ScopeUsage &usage,
                                  std::uint64_t now_ns) {
    if (state.in_use_samples.empty() || now_ns <= state.in_use_samples.front().first)
        return std::nullopt;
    const auto &[first_ns, first_value] = state.in_use_samples.front();
    double span_s = double(now_ns - first_ns) / 1e9;
    double fill_per_s =
        span_s >= kMinFillSpanS ? (double(usage.in_use) - double(first_value)) / span_s : 0;
    if (fill_per_s > 0 && usage.capacity >= usage.in_use)
        return double(usage.capacity - usage.in_use) / fill_per_s;
    return std::nullopt;
}

}  // namespace

WarningLevel next_level(WarningLevel current, double utilization, const ModelSettings &settings) {
    WarningLevel target = utilization >= settings.critical_ratio ? WarningLevel::critical
                          : utilization >= settings.warn_ratio   ? WarningLevel::warning
                                                                 : WarningLevel::ok;
    if (target >= current) return target;
    if (current == WarningLevel::critical &&
        utilization >= settings.critical_ratio - settings.hysteresis)
        return WarningLevel::critical;
    if (utilization >= settings.warn_ratio - settings.hysteresis) return WarningLevel::warning;
    return target;
}

std::string_view name_of(ScopeKind kind) {
    return name_in(kScopeKindNames, kind);
}

std::string_view name_of(WarningLevel level) {
    return name_in(kWarningLevelNames, level);
}

// A failed connect() has no source address any more (the kernel reset it); it belongs
// to the fullest known scope towards that destination.
std::optional<ScopeKey> PortModel::failure_scope(const AllocateEvent &failure) {
    if (failure.how == How::bind)
        return std::nullopt;  // one port taken: a conflict, not exhaustion
    ScopeKey key = scope_of(failure.sock, failure.how);
    if (key.kind != ScopeKind::destination) return key;
    const ScopeKey *best = fullest_scope([&key](const ScopeKey &candidate) {
        return candidate.kind == ScopeKind::destination && candidate.netns == key.netns &&
               candidate.remote_addr == key.remote_addr && candidate.remote_port == key.remote_port;
    });
    return best ? *best : key;
}

const ScopeKey *PortModel::fullest_scope(
    const std::function<bool(const ScopeKey &)> &matches) const {
    const ScopeKey *fullest = nullptr;
    double fullest_utilization = -1;
    for (const auto &[key, state] : scopes_) {
        if (!matches(key)) continue;
        if (double fill = utilization(key, state); fill > fullest_utilization) {
            fullest = &key;
            fullest_utilization = fill;
        }
    }
    return fullest;
}

bool PortModel::time_wait_counts(const ScopeKey &key) const {
    if (key.kind != ScopeKind::destination) return true;
    auto ns = netns_.find(key.netns);
    int tw_reuse = ns == netns_.end() ? 2 : ns->second.config.tw_reuse;
    if (tw_reuse == 1) return false;
    return !(tw_reuse == 2 && is_loopback(key.remote_addr));
}

std::size_t PortModel::in_use(const ScopeKey &key, const ScopeState &state) const {
    auto ns = netns_.find(key.netns);
    if (ns == netns_.end()) return state.held;
    switch (key.kind) {
        case ScopeKind::destination:
            return state.held + (time_wait_counts(key) ? state.time_wait : 0);
        case ScopeKind::bind:
            return ns->second.tcp_any.ephemeral;
        case ScopeKind::udp:
            return ns->second.udp.ephemeral;
        case ScopeKind::nat:
            return state.held;
    }
    return state.held;
}

// bind(0)/listen() skip every TCP port in TIME_WAIT, whichever scope's socket it was: the
// bind scope counts each such port in the range once.
std::size_t PortModel::time_wait_of(const ScopeKey &key, const ScopeState &state) const {
    if (key.kind != ScopeKind::bind) return state.time_wait;
    auto ns = netns_.find(key.netns);
    return ns == netns_.end() ? 0 : ns->second.tcp_time_wait.ephemeral;
}

std::size_t PortModel::capacity(const ScopeKey &key) const {
    if (key.kind == ScopeKind::nat) return nat_capacity(key);
    auto ns = netns_.find(key.netns);
    if (ns == netns_.end()) return 0;
    std::size_t capacity = ns->second.config.capacity();
    if (key.kind != ScopeKind::destination) return capacity;
    std::size_t bound = ns->second.tcp_bind.ephemeral;
    return capacity > bound ? capacity - bound : 0;
}

double PortModel::utilization(const ScopeKey &key, const ScopeState &state) const {
    std::size_t cap = capacity(key);
    return cap ? double(in_use(key, state)) / double(cap) : 1.0;
}

void PortModel::count_allocation(ScopeState &state, std::uint64_t now_ns) {
    std::uint64_t second = now_ns / kSecondNs;
    if (state.allocations.empty() || state.allocations.back().first != second)
        state.allocations.emplace_back(second, 0);
    state.allocations.back().second++;
}

void PortModel::count_release(ScopeState &state, const ReleaseEvent &event) {
    std::uint64_t second = event.boot_ns / kSecondNs;
    if (state.releases.empty() || state.releases.back().second != second)
        state.releases.push_back({second, 0, 0, 0});
    ScopeState::Releases &now = state.releases.back();
    bool tcp = event.sock.proto == Proto::tcp;
    if (tcp && event.time_wait())
        now.time_wait++;
    else if (tcp && event.reason == ReleaseReason::tcp_closed)
        now.closed++;
    else
        now.other++;
}

void PortModel::record_sample(ScopeState &state, const ScopeKey &key, std::uint64_t now_ns) {
    std::size_t value = in_use(key, state);
    // one sample per second, but the first one stays as it was: the fill rate of a young
    // scope is measured from it
    if (state.in_use_samples.size() > 1 &&
        state.in_use_samples.back().first / kSecondNs == now_ns / kSecondNs)
        state.in_use_samples.back().second = value;
    else
        state.in_use_samples.emplace_back(now_ns, value);
    while (state.in_use_samples.size() > 1 &&
           state.in_use_samples.front().first + settings_.rate_window_ns < now_ns)
        state.in_use_samples.pop_front();
    std::uint64_t now_s = now_ns / kSecondNs;
    std::uint64_t window_s = settings_.rate_window_ns / kSecondNs;
    while (!state.allocations.empty() && state.allocations.front().first + window_s < now_s)
        state.allocations.pop_front();
    while (!state.releases.empty() && state.releases.front().second + window_s < now_s)
        state.releases.pop_front();
}

ScopeUsage PortModel::usage_of(const ScopeKey &key, const ScopeState &state,
                               std::uint64_t now_ns) const {
    ScopeUsage usage;
    usage.key = key;
    usage.proto = state.proto;
    usage.in_use = in_use(key, state);
    usage.time_wait = time_wait_of(key, state);
    usage.capacity = capacity(key);
    usage.utilization = usage.capacity ? double(usage.in_use) / double(usage.capacity) : 1.0;
    usage.level = state.level;
    usage.allocation_rate = allocation_rate(state, now_ns);
    usage.eta_seconds = eta_seconds(state, usage, now_ns);
    usage.top_processes = top_processes(key, state);
    return usage;
}

ScopeUsage PortModel::usage_with_causes(const ScopeKey &key, const ScopeState &state,
                                        std::uint64_t now_ns) const {
    ScopeUsage usage = usage_of(key, state, now_ns);
    attach_causes({{&usage, &state}}, now_ns);
    return usage;
}

std::optional<Warning> PortModel::evaluate(const ScopeKey &key, ScopeState &state,
                                           std::uint64_t now_ns) {
    WarningLevel level = next_level(state.level, utilization(key, state), settings_);
    bool dropping = key.kind == ScopeKind::nat && state.nat_drop_ns &&
                    now_ns < state.nat_drop_ns + settings_.nat_drop_hold_ns;
    if (dropping) level = WarningLevel::critical;
    if (level == state.level) return std::nullopt;
    state.level = level;
    if (level != WarningLevel::critical) state.failure_reported = false;
    Warning warning;
    warning.boot_ns = now_ns;
    warning.level = level;
    warning.usage = usage_with_causes(key, state, now_ns);
    return warning;
}

void PortModel::evaluate_netns(std::uint32_t netns, std::uint64_t now_ns) {
    for (auto &[key, state] : scopes_) {
        if (key.netns != netns) continue;
        record_sample(state, key, now_ns);
        if (auto warning = evaluate(key, state, now_ns)) pending_warnings_.push_back(*warning);
    }
}

// Every TCP port counts against bind(0)/listen(), whatever scope it was allocated in.
void PortModel::evaluate_bind_scope(const ScopeKey &changed, Proto proto, std::uint64_t now_ns,
                                    std::vector<Warning> &warnings) {
    if (proto != Proto::tcp || changed.kind == ScopeKind::bind) return;
    ScopeKey key;
    key.kind = ScopeKind::bind;
    key.netns = changed.netns;
    ScopeState &state = scope_state(key, Proto::tcp);
    record_sample(state, key, now_ns);
    if (auto warning = evaluate(key, state, now_ns)) warnings.push_back(*warning);
}

}  // namespace portwatch
