// SPDX-License-Identifier: Apache-2.0
#include "model/run_summary.h"

#include <algorithm>
#include <tuple>

namespace portwatch {

void RunSummaryBuilder::add(const Event &event) {
    if (const auto *allocate = std::get_if<AllocateEvent>(&event))
        allocated(*allocate);
    else
        released(std::get<ReleaseEvent>(event));
}

void RunSummaryBuilder::allocated(const AllocateEvent &event) {
    if (event.failed()) {
        failures_[event.error]++;
        return;
    }
    allocations_[{event.sock.proto, event.how}]++;
    Held held{{event.task.pid, event.task.comm, event.sock, event.how},
              scope_of(event.sock, event.how)};
    // A cookie seen again (a socket bound, then connected) holds one port: counted once.
    auto [at, added] = held_.insert_or_assign(event.sock.cookie, held);
    (void)at;
    if (!added) return;
    Count &count = scopes_[{held.scope, event.sock.proto}];
    count.peak = std::max(count.peak, ++count.now);
}

void RunSummaryBuilder::released(const ReleaseEvent &event) {
    auto held = held_.find(event.sock.cookie);
    if (held == held_.end()) return;  // allocated before the run
    Count &count = scopes_[{held->second.scope, held->second.entry.sock.proto}];
    if (count.now) count.now--;
    held_.erase(held);
}

RunSummary RunSummaryBuilder::summary() const {
    RunSummary summary;
    summary.allocations = allocations_;
    summary.failures_by_errno = failures_;
    for (const auto &[key, count] : scopes_)
        summary.peaks.push_back({key.first, key.second, count.peak});
    std::stable_sort(summary.peaks.begin(), summary.peaks.end(),
                     [](const ScopePeak &a, const ScopePeak &b) { return a.peak > b.peak; });
    for (const auto &[cookie, held] : held_) summary.still_held.push_back(held.entry);
    std::sort(summary.still_held.begin(), summary.still_held.end(),
              [](const HeldPortEntry &a, const HeldPortEntry &b) {
                  return std::tie(a.pid, a.sock.proto, a.sock.local_port, a.sock.cookie) <
                         std::tie(b.pid, b.sock.proto, b.sock.local_port, b.sock.cookie);
              });
    return summary;
}

}  // namespace portwatch
