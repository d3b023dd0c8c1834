// SPDX-License-Identifier: Apache-2.0
// What the agent counts: records the kernel side emitted and lost (ring buffer
// full), per record type and allocation kind, summed over CPUs.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "events/abi.h"
#include "agent/reach.h"

namespace portwatch {

struct CounterTotals {
    using Matrix = std::array<std::array<std::uint64_t, PW_HOW_COUNT>, PW_RECORD_TYPE_COUNT>;
    Matrix emitted{};
    Matrix lost{};
    std::uint64_t untracked = 0;         // releases that cannot be seen (no cookie, table full)
    std::uint64_t pending_overflow = 0;  // syscalls in flight the kernel side could not remember

    static CounterTotals sum(std::span<const pw_counters> per_cpu);
    std::uint64_t lost_total() const;
    std::uint64_t emitted_total() const;
};

// How much the kernel's socket tables corrected the event-built picture, in total.
struct ReconcileTotals {
    std::uint64_t runs = 0;
    std::uint64_t added = 0;      // sockets the tables had and the events had not shown
    std::uint64_t removed = 0;    // sockets the events left held that the tables no longer had
    std::uint64_t time_wait = 0;  // TIME_WAIT entries added or dropped
    double baseline_ms = 0;       // wall time of the pass at start (set by the app)
    double last_ms = 0;           // ... of the latest pass
};

// What the NAT watch saw: the conntrack tables of the namespaces that translate.
struct NatTotals {
    std::size_t namespaces = 0;     // namespaces whose conntrack events are watched
    std::size_t mappings = 0;       // source NAT mappings the model holds
    std::uint64_t drops = 0;        // packets a NAT dropped for want of a free port, since start
    std::uint64_t overflows = 0;    // times an events socket overflowed (its table read again)
    std::uint64_t malformed = 0;    // conntrack messages that could not be read
    std::string error;              // why the last namespace that failed cannot be watched
};

struct StatsSnapshot {
    std::int64_t realtime_ns = 0;
    double uptime_s = 0;
    CounterTotals kernel;
    // Why the kernel's counters could not be read ("" when they were): `kernel` is then the
    // last reading that worked, never zeros, so lost events never read as none.
    std::string counters_error;
    std::uint64_t decoded = 0;            // records user space turned into events
    std::uint64_t decode_errors = 0;      // records rejected by the decoder
    std::uint64_t owners_forgotten = 0;   // PortOwners::evicted(): releases left without owner
    std::uint64_t output_lines_lost = 0;  // lines the output could not take (a full disk)
    ReconcileTotals reconcile;            // corrections from the kernel's socket tables
    std::size_t tracked_sockets = 0;      // sockets whose ports the model holds
    NatTotals nat;
    Reach reach;                          // for the metrics; `ready` says it once in the output
    std::vector<std::string> detached;    // programs whose link something else detached
    bool final = false;
};

}  // namespace portwatch
