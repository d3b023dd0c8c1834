// SPDX-License-Identifier: Apache-2.0
// Reports: the picture at a moment, per netns and per process; and forgetting what has been
// idle long enough that no report would show it.
#include "model/port_model.h"

#include <algorithm>

namespace portwatch {

Report PortModel::report(std::uint64_t now_boot_ns) {
    for (auto &[netns, state] : netns_) state.reread(config_source_(netns, 0));
    // A scope that held nothing and did nothing in the interval is left out of it.
    Report report =
        build_report(now_boot_ns, interval_started_ ? interval_start_ns_ / kSecondNs : 0);
    processes_.end_interval();
    interval_start_ns_ = now_boot_ns;
    interval_started_ = true;
    forget_idle(now_boot_ns);
    return report;
}

Report PortModel::current(std::uint64_t now_boot_ns) {
    return build_report(now_boot_ns, 0);
}

Report PortModel::build_report(std::uint64_t now_boot_ns, std::uint64_t active_since_s) {
    expire_time_wait(now_boot_ns, pending_warnings_);
    Report report;
    report.boot_ns = now_boot_ns;
    report.interval_s = interval_started_ && now_boot_ns > interval_start_ns_
                            ? double(now_boot_ns - interval_start_ns_) / 1e9
                            : 0;
    add_scope_usages(report, now_boot_ns, active_since_s);
    add_process_usages(report);
    return report;
}

// Every netns with its scopes, fullest first, those at warning or above with their causes.
void PortModel::add_scope_usages(Report &report, std::uint64_t now_boot_ns,
                                 std::uint64_t active_since_s) const {
    for (const auto &[netns, state] : netns_) report.netns.push_back({netns, state.config, {}, {}, state.nat_drops});
    for (const auto &[key, state] : scopes_) {
        if (quiet(key, state, active_since_s)) continue;
        for (auto &ns : report.netns)
            if (ns.netns == key.netns) ns.scopes.push_back(usage_of(key, state, now_boot_ns));
    }
    std::vector<std::pair<ScopeUsage *, const ScopeState *>> warned;
    for (auto &ns : report.netns)
        for (auto &usage : ns.scopes)
            if (usage.level >= WarningLevel::warning)
                warned.emplace_back(&usage, &scopes_.at(usage.key));
    attach_causes(warned, now_boot_ns);
    for (auto &ns : report.netns)
        std::stable_sort(
            ns.scopes.begin(), ns.scopes.end(),
            [](const ScopeUsage &a, const ScopeUsage &b) { return a.utilization > b.utilization; });
}

// The processes that hold ports or allocated in the interval, most ports held first.
void PortModel::add_process_usages(Report &report) const {
    for (const auto &[pid, usage] : processes_.all()) {
        if (!usage.held_total() && !usage.allocations && !usage.failures) continue;
        report.processes.push_back(usage);
        report.processes.back().allocation_rate =
            report.interval_s > 0 ? double(usage.allocations) / report.interval_s : 0;
    }
    std::stable_sort(report.processes.begin(), report.processes.end(),
                     [](const ProcessUsage &a, const ProcessUsage &b) {
                         return a.held_total() > b.held_total();
                     });
}

// A scope with nothing held, nothing in TIME_WAIT and no allocation in the rate window is
// dropped, and a netns left without scopes or processes with it (a container that is gone):
// on a host with churn, nothing else would ever shrink these maps.
// Nothing to show: no port counted, no TIME_WAIT, level ok, no allocation since `since_s`.
bool PortModel::quiet(const ScopeKey &key, const ScopeState &state, std::uint64_t since_s) const {
    bool allocated = !state.allocations.empty() && state.allocations.back().first >= since_s;
    return in_use(key, state) == 0 && time_wait_of(key, state) == 0 &&
           state.level == WarningLevel::ok && !allocated;
}

void PortModel::forget_idle(std::uint64_t now_ns) {
    std::uint64_t window_start_s =
        (now_ns - std::min(now_ns, settings_.rate_window_ns)) / kSecondNs;
    std::erase_if(scopes_, [&](const auto &entry) {
        return entry.second.held == 0 && quiet(entry.first, entry.second, window_start_s);
    });
    std::set<std::uint32_t> busy;
    for (const auto &[key, state] : scopes_) busy.insert(key.netns);
    for (const auto &[pid, usage] : processes_.all()) busy.insert(usage.netns);
    std::erase_if(netns_, [&](const auto &entry) {
        const NetnsState &ns = entry.second;
        return !busy.contains(entry.first) && ns.tcp_any.holders.empty() && ns.udp.holders.empty();
    });
}

}  // namespace portwatch
