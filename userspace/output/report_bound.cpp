// SPDX-License-Identifier: Apache-2.0
#include "output/report_bound.h"

#include "model/port_model.h"

#include <algorithm>
#include <map>

namespace portwatch {
namespace {

void leave_out(ScopesLeftOut &rest, const ScopeUsage &usage) {
    rest.count++;
    rest.in_use += usage.in_use;
    rest.time_wait += usage.time_wait;
    rest.utilization = std::max(rest.utilization, usage.utilization);
    rest.level = std::max(rest.level, usage.level);
}

void leave_out(ProcessesLeftOut &rest, const ProcessUsage &usage) {
    rest.count++;
    rest.ports_held += usage.held_total();
    rest.allocations += usage.allocations;
    rest.failures += usage.failures;
}

// Scopes come fullest first: the first `top` stay, and any scope that is not ok.
void bound_scopes(NetnsReport &ns, std::size_t top) {
    std::vector<ScopeUsage> kept;
    for (std::size_t i = 0; i < ns.scopes.size(); i++) {
        if (i < top || ns.scopes[i].level != WarningLevel::ok)
            kept.push_back(std::move(ns.scopes[i]));
        else
            leave_out(ns.scopes_left_out, ns.scopes[i]);
    }
    ns.scopes = std::move(kept);
}

// Processes come most ports held first: the first `top` of each netns stay.
void bound_processes(Report &report, std::size_t top) {
    std::map<std::uint32_t, std::size_t> kept_in_netns;
    std::vector<ProcessUsage> kept;
    for (ProcessUsage &usage : report.processes) {
        if (kept_in_netns[usage.netns]++ < top)
            kept.push_back(std::move(usage));
        else
            leave_out(report.processes_left_out, usage);
    }
    report.processes = std::move(kept);
}

}  // namespace

void bound_report(Report &report, std::size_t top) {
    if (top == 0) return;
    for (NetnsReport &ns : report.netns) bound_scopes(ns, top);
    bound_processes(report, top);
}

}  // namespace portwatch
