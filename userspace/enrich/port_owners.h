// SPDX-License-Identifier: Apache-2.0
// Who got each port the kernel does not remember an owner for.
//
// The kernel side keeps no per-socket state for a connect()-allocated TCP port (that
// is the hot path of a busy client); its release record says only which socket, by
// cookie. PortOwners remembers every successful allocation by cookie and completes
// such a release with the owner, how and how long the port was held.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <absl/container/flat_hash_map.h>

#include "events/event.h"

namespace portwatch {

class PortOwners {
  public:
    // At most `capacity` sockets are remembered; past that the oldest are forgotten.
    explicit PortOwners(std::size_t capacity);

    // Applies an event in order: remembers allocations, completes and forgets releases.
    void apply(Event &event);

    std::size_t size() const { return owners_.size(); }
    // Allocations forgotten to make room; their releases are reported without an owner.
    std::uint64_t evicted() const { return evicted_; }

  private:
    struct Owner {
        TaskInfo task;
        How how;
        std::uint64_t allocated_boot_ns;
    };

    void remember(const AllocateEvent &allocation);
    void complete(ReleaseEvent &release);
    void make_room();

    std::size_t capacity_;
    absl::flat_hash_map<std::uint64_t, Owner> owners_;  // no node to allocate per connection
    std::deque<std::uint64_t> arrival_order_;           // may hold cookies already released
    std::uint64_t evicted_ = 0;
};

}  // namespace portwatch
