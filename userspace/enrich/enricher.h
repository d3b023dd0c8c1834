// SPDX-License-Identifier: Apache-2.0
// The one enrichment step: each event is filled in once, right after decoding and before
// anything reads it, with who and where:
//   - the owner of a release the kernel sent none for (PortOwners: the allocation it saw),
//   - the model's word on who holds the socket now (reconciliation may have moved it),
//   - the process's cgroup path, and with it the container it shows (CgroupPath).
// Pure: the model's word and the cgroup paths (system/cgroup_id_lookup) are injected.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "enrich/port_owners.h"
#include "events/event.h"

namespace portwatch {

class Enricher {
  public:
    // Completes a release with the model's knowledge of its socket; false for one this
    // monitor never reported (PortModel::attribute()).
    using Attribution = std::function<bool(ReleaseEvent &)>;
    // A cgroup id's path under the cgroup2 root; "" when unknown.
    using CgroupResolver = std::function<std::string(std::uint64_t cgroup_id)>;

    // At most `max_owners` allocations are remembered for their releases (PortOwners).
    explicit Enricher(std::size_t max_owners, Attribution attribute = {},
                      CgroupResolver cgroup_path = {});

    // Fills the event in; false when it is to be dropped (see Attribution).
    bool enrich(Event &event);

    // Allocations forgotten to make room; their releases are reported without an owner.
    std::uint64_t owners_forgotten() const { return owners_.evicted(); }

  private:
    PortOwners owners_;
    Attribution attribute_;
    CgroupResolver cgroup_path_;
};

// Sets the cgroup path of the event's process (an allocation's, a known owner's) that has
// none, from its cgroup id.
void fill_cgroup_paths(Event &event, const Enricher::CgroupResolver &path_of);

}  // namespace portwatch
