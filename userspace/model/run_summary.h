// SPDX-License-Identifier: Apache-2.0
// What `monitor -- CMD` says at the end of the run: the allocations by kind, the failures by
// errno, the most ports each scope had held at once, and the ports still held when CMD
// exited, by whom (a leak report). Built from the events alone, as they come; pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "events/event.h"
#include "model/scope_key.h"

namespace portwatch {

struct HeldPortEntry {
    std::uint32_t pid = 0;
    std::string comm;
    SocketInfo sock;
    How how = How::bind;
};

struct ScopePeak {
    ScopeKey key;
    Proto proto = Proto::tcp;
    std::size_t peak = 0;  // ports held by processes at once (TIME_WAIT not counted)
};

struct RunSummary {
    std::map<std::pair<Proto, How>, std::uint64_t> allocations;
    std::map<int, std::uint64_t> failures_by_errno;
    std::vector<ScopePeak> peaks;           // highest first
    std::vector<HeldPortEntry> still_held;  // by pid, then protocol and port
};

class RunSummaryBuilder {
  public:
    void add(const Event &event);
    RunSummary summary() const;

  private:
    void allocated(const AllocateEvent &event);
    void released(const ReleaseEvent &event);

    struct Held {
        HeldPortEntry entry;
        ScopeKey scope;
    };
    struct Count {
        std::size_t now = 0;
        std::size_t peak = 0;
    };
    std::map<std::pair<Proto, How>, std::uint64_t> allocations_;
    std::map<int, std::uint64_t> failures_;
    std::unordered_map<std::uint64_t, Held> held_;  // by socket cookie
    std::map<std::pair<ScopeKey, Proto>, Count> scopes_;
};

}  // namespace portwatch
