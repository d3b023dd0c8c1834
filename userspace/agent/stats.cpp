// SPDX-License-Identifier: Apache-2.0
#include "agent/stats.h"

namespace portwatch {

CounterTotals CounterTotals::sum(std::span<const pw_counters> per_cpu) {
    CounterTotals totals;
    for (const pw_counters &cpu : per_cpu) {
        for (std::size_t type = 0; type < PW_RECORD_TYPE_COUNT; type++) {
            for (std::size_t how = 0; how < PW_HOW_COUNT; how++) {
                totals.emitted[type][how] += cpu.emitted[type][how];
                totals.lost[type][how] += cpu.lost[type][how];
            }
        }
        totals.untracked += cpu.untracked;
        totals.pending_overflow += cpu.pending_overflow;
    }
    return totals;
}

namespace {

std::uint64_t total_of(const CounterTotals::Matrix &matrix) {
    std::uint64_t total = 0;
    for (const auto &row : matrix)
        for (std::uint64_t n : row) total += n;
    return total;
}

}  // namespace

std::uint64_t CounterTotals::lost_total() const {
    return total_of(lost);
}
std::uint64_t CounterTotals::emitted_total() const {
    return total_of(emitted);
}

}  // namespace portwatch
